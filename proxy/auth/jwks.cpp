#include "proxy/auth/jwks.hpp"

#include "proxy/auth/clerk_flight.hpp"
#include "proxy/logging.hpp"

#include <spdlog/logger.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <mutex>
#include <variant>

namespace clerk::proxy {

using steady = std::chrono::steady_clock;

struct jwks_provider::state {
    state(net::any_io_executor ex, std::shared_ptr<clerk_api> a, const config::clerk_config& c,
          metrics& mm)
        : exec(ex), strand(net::make_strand(ex)), timer(strand), api(std::move(a)), cfg(c), m(mm) {}

    net::any_io_executor exec;
    net::strand<net::any_io_executor> strand;
    net::steady_timer timer;  ///< refresh loop; only touched on `strand`
    std::shared_ptr<clerk_api> api;
    config::clerk_config cfg;
    metrics& m;
    bool from_pem = false;

    mutable std::mutex mu;
    std::shared_ptr<const core::jwt_key_set> keys;
    steady::time_point last_fetch{};  ///< start of the last on-demand fetch; guarded by mu
    bool fetched_once = false;

    core::single_flight<bool, std::monostate, std::hash<std::monostate>>
        flights;  // one fetch at a time
    std::atomic<bool> stopped{false};
    std::atomic<bool> started{false};
};

namespace {

std::shared_ptr<spdlog::logger> clerk_log() {
    return get_logger("clerk");
}

using state_ptr = std::shared_ptr<jwks_provider::state>;

net::awaitable<bool> fetch_once(state_ptr st, steady::time_point deadline) {
    clerk_http_request req;
    req.verb = clerk_http_request::method::get;
    req.path = "/v1/jwks";
    req.bearer = st->cfg.secret_key;  // never the machine key (docs/clerk-protocol.md §5.1)
    auto start = steady::now();
    auto reply = co_await st->api->call(req, std::min(deadline, start + st->cfg.timeout));
    std::chrono::duration<double> took = steady::now() - start;
    st->m.clerk_request(reply.status, took.count());
    if (reply.status != 200) {
        if (reply.status == 401 || reply.status == 403) {
            clerk_log()->error(
                "Clerk JWKS fetch rejected our credentials (HTTP {}): check "
                "clerk.secret_key; keeping the last good key set",
                reply.status);
        } else {
            clerk_log()->warn(
                "Clerk JWKS fetch failed ({}); keeping the last good key set",
                reply.status ? std::to_string(reply.status) : std::string(to_string(reply.error)));
        }
        co_return false;
    }
    std::string error;
    auto set = core::jwt_key_set::from_jwks_json(reply.body, error);
    if (!set) {
        clerk_log()->warn("Clerk JWKS response unusable ({}); keeping the last good key set",
                          error);
        co_return false;
    }
    {
        std::lock_guard lock(st->mu);
        st->keys = std::move(set);
        st->fetched_once = true;
    }
    co_return true;
}

/// One coalesced fetch. On-demand fetches (`min_interval` > 0: an unknown kid, no keys yet)
/// are skipped when another on-demand fetch started less than `min_interval` ago; the
/// background refresh (`min_interval` 0) always fetches and does not count against that.
net::awaitable<void> coalesced_fetch(state_ptr st, steady::time_point deadline,
                                     steady::duration min_interval) {
    const bool on_demand = min_interval.count() > 0;
    if (on_demand) {
        std::lock_guard lock(st->mu);
        if (steady::now() - st->last_fetch < min_interval) {
            co_return;
        }
    }
    static constexpr std::monostate flight_key{};
    auto exec = st->exec;
    auto& flights = st->flights;
    // Named lambdas, outside the co_await expression (GCC 12 double-destroys closure
    // temporaries there).
    auto make_lead = [st, deadline, min_interval, on_demand]() -> net::awaitable<bool> {
        if (on_demand) {
            std::lock_guard lock(st->mu);
            auto now = steady::now();
            if (now - st->last_fetch < min_interval) {
                return [](bool v) -> net::awaitable<bool> { co_return v; }(true);
            }
            st->last_fetch = now;
        }
        return fetch_once(st, deadline);
    };
    auto on_error = [] { return false; };
    net::awaitable<bool> flight = join_flight<bool, net::any_io_executor>(
        flights, flight_key, exec, std::move(make_lead), on_error);
    co_await std::move(flight);
}

net::awaitable<void> refresh_loop(state_ptr st) {
    while (!st->stopped.load()) {
        bool ok = false;
        {
            co_await coalesced_fetch(st, steady::now() + st->cfg.timeout, steady::duration{0});
            std::lock_guard lock(st->mu);
            ok = st->fetched_once;
        }
        if (st->stopped.load()) {
            break;
        }
        // Until the first success, retry every few seconds; then every refresh_interval.
        st->timer.expires_after(ok ? steady::duration(jwks_provider::refresh_interval)
                                   : steady::duration(std::chrono::seconds(5)));
        boost::system::error_code ec;
        co_await st->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
        if (ec) {
            break;  // stop()
        }
    }
}

}  // namespace

jwks_provider::jwks_provider(net::any_io_executor exec, std::shared_ptr<clerk_api> api,
                             const config::clerk_config& cfg, metrics& m)
    : st_(std::make_shared<state>(std::move(exec), std::move(api), cfg, m)) {
    if (!cfg.jwt_key.empty()) {
        st_->from_pem = true;
        std::string error;
        st_->keys = core::jwt_key_set::from_pem(cfg.jwt_key, error);
        if (!st_->keys) {
            clerk_log()->error(
                "clerk.jwt_key is not a usable RSA public key ({}); M2M JWTs "
                "cannot be verified",
                error);
        }
    }
}

jwks_provider::~jwks_provider() {
    stop();
}

bool jwks_provider::configured() const {
    return st_->from_pem || (!st_->cfg.secret_key.empty() && st_->api);
}

std::shared_ptr<const core::jwt_key_set> jwks_provider::current() const {
    std::lock_guard lock(st_->mu);
    return st_->keys;
}

net::awaitable<std::shared_ptr<const core::jwt_key_set>> jwks_provider::refresh(
    steady::time_point deadline) {
    if (configured() && !st_->from_pem) {
        co_await coalesced_fetch(st_, deadline, min_refetch_interval);
    }
    co_return current();
}

void jwks_provider::start() {
    if (!configured() || st_->from_pem || st_->started.exchange(true)) {
        return;
    }
    net::co_spawn(st_->strand, refresh_loop(st_), net::detached);
}

void jwks_provider::stop() {
    if (st_->stopped.exchange(true)) {
        return;
    }
    net::post(st_->strand, [st = st_] { st->timer.cancel(); });
}

}  // namespace clerk::proxy
