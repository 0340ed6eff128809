#include "proxy/auth/shared_cache.hpp"

#include "proxy/auth/redis_client.hpp"
#include "proxy/logging.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>
#include <chrono>
#include <limits>

namespace clerk::proxy {

namespace net = boost::asio;
namespace {

long long wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

std::shared_ptr<shared_cache> shared_cache::create(net::any_io_executor exec,
                                                   const config::config& cfg, metrics& m,
                                                   std::string& error) {
    if (!cfg.cache.shared.enabled()) {
        return nullptr;
    }
    auto redis = redis_client::create(exec, cfg.cache.shared, error);
    if (!redis) {
        error = "cache.shared: " + error;
        return nullptr;
    }
    return std::make_shared<shared_cache>(std::move(exec), cfg, m, std::move(redis));
}

shared_cache::shared_cache(net::any_io_executor exec, const config::config& cfg, metrics& m,
                           std::shared_ptr<redis_client> redis)
    : exec_(std::move(exec)),
      codec_(cfg.clerk.verify_key(), cfg.cache.shared.key_prefix),
      ttl_(cfg.cache.ttl),
      negative_ttl_(cfg.cache.negative_ttl),
      m_(m),
      redis_(std::move(redis)) {}

void shared_cache::start() {
    redis_->start();
}

void shared_cache::stop() {
    redis_->stop();
}

net::awaitable<std::optional<core::shared_entry_codec::entry>> shared_cache::lookup(
    std::string key) {
    auto self = shared_from_this();
    std::vector<std::string> get{"GET", key};  // outside the co_await (GCC 12)
    const auto r = co_await redis_->command(std::move(get));
    if (!r || (r->type != redis_reply::kind::string && r->type != redis_reply::kind::nil)) {
        m_.shared_cache_lookup(metrics::shared_result::error);
        co_return std::nullopt;
    }
    if (r->type == redis_reply::kind::nil) {
        m_.shared_cache_lookup(metrics::shared_result::miss);
        co_return std::nullopt;
    }
    core::shared_entry_codec::entry e;
    const auto st = codec_.decode(key, r->str, wall_ms(), e);
    if (st == core::shared_entry_codec::decode_status::ok) {
        m_.shared_cache_lookup(metrics::shared_result::hit);
        co_return e;
    }
    if (st == core::shared_entry_codec::decode_status::bad_mac) {
        // Written by someone without our Clerk key (or altered): never trusted.
        m_.shared_cache_bad_entry();
        get_logger("cache")->debug("shared cache: an entry failed its MAC check (ignored)");
    }
    m_.shared_cache_lookup(metrics::shared_result::miss);
    co_return std::nullopt;
}

void shared_cache::store_positive(std::string key, const core::identity& id) {
    const long long now = wall_ms();
    long long until = now + ttl_.count();
    if (id.expires_at_ms) {
        until = std::min(until, *id.expires_at_ms);
    }
    if (ttl_.count() <= 0 || until <= now) {
        return;
    }
    auto value = codec_.encode_positive(key, id, until);
    store(std::move(key), std::move(value), until);
}

void shared_cache::store_negative(std::string key, std::string_view reason) {
    const long long until = wall_ms() + negative_ttl_.count();
    if (negative_ttl_.count() <= 0) {
        return;
    }
    auto value = codec_.encode_negative(key, reason, until);
    store(std::move(key), std::move(value), until);
}

void shared_cache::store(std::string key, std::string value, long long until_ms) {
    const long long px = until_ms - wall_ms();
    if (px <= 0) {
        return;
    }
    net::co_spawn(
        exec_,
        [self = shared_from_this(), key = std::move(key), value = std::move(value),
         px]() -> net::awaitable<void> {
            std::vector<std::string> set{"SET", key, value, "PX", std::to_string(px)};
            const auto r = co_await self->redis_->command(std::move(set));
            self->m_.shared_cache_write(r && r->type == redis_reply::kind::status);
        },
        net::detached);
}

}  // namespace clerk::proxy
