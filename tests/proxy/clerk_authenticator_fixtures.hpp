#pragma once
// Shared fixtures of the authenticator tests (clerk_authenticator_test.cpp,
// clerk_authenticator_failure_test.cpp, clerk_authenticator_types_test.cpp): a scripted Clerk,
// Clerk's token JSON, and the authenticator over a fake clock and a real verification cache.
#include "proxy/auth/clerk_authenticator.hpp"

#include "fakes/fake_clock.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clerk::testing::authenticator_fixtures {

using namespace std::chrono_literals;

inline const core::token_class opaque_m2m{core::token_type::m2m_token, core::token_format::opaque};

inline std::string token_json(std::string_view id, long long expiration_ms = 0) {
    nlohmann::json j{{"object", "machine_to_machine_token"},
                     {"id", id},
                     {"subject", "mch_a"},
                     {"scopes", {"mch_b"}},
                     {"claims", {{"tenant", "t1"}}},
                     {"revoked", false},
                     {"expired", false},
                     {"expiration", nullptr}};
    if (expiration_ms != 0) {
        j["expiration"] = expiration_ms;
    }
    return j.dump();
}

inline proxy::clerk_http_reply reply(int status, std::string body = "",
                                     std::string retry_after = "") {
    proxy::clerk_http_reply r;
    r.status = status;
    r.body = std::move(body);
    r.retry_after = std::move(retry_after);
    return r;
}

/// Scripted Clerk: answers from `script` in order (the last entry repeats), after `delay`.
class fake_clerk final : public proxy::clerk_api {
public:
    boost::asio::awaitable<proxy::clerk_http_reply> call(
        proxy::clerk_http_request req, std::chrono::steady_clock::time_point deadline) override {
        std::size_t n = calls.fetch_add(1);
        {
            std::lock_guard lock(mu);
            requests.push_back({req.verb, req.path, req.body, std::string(req.bearer)});
            deadlines.push_back(deadline);
        }
        if (delay.count() > 0) {
            boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, delay);
            co_await t.async_wait(boost::asio::use_awaitable);
        }
        std::lock_guard lock(mu);
        if (script.empty()) {
            co_return reply(599);
        }
        co_return script[std::min(n, script.size() - 1)];
    }

    struct recorded {
        proxy::clerk_http_request::method verb;
        std::string path, body, bearer;
    };
    std::atomic<std::size_t> calls{0};
    std::chrono::milliseconds delay{0};
    std::mutex mu;
    std::vector<proxy::clerk_http_reply> script;
    std::vector<recorded> requests;
    std::vector<std::chrono::steady_clock::time_point> deadlines;
};

/// The authenticator under test: clerk.timeout 500ms, 2 retries, cache ttl 60s, negative_ttl
/// 10s, unless `tweak` changes the config.
struct fixture {
    explicit fixture(std::function<void(config::config&)> tweak = {}) {
        auto c = std::make_shared<config::config>();
        c->clerk.api_url = "http://127.0.0.1:1";
        c->clerk.machine_secret_key = "ak_machine";
        c->clerk.secret_key = "";
        c->clerk.timeout = 500ms;
        c->clerk.retries = 2;
        c->cache.ttl = 60s;
        c->cache.negative_ttl = 10s;
        if (tweak) {
            tweak(*c);
        }
        core::cache_options opts;
        opts.ttl = c->cache.ttl;
        opts.negative_ttl = c->cache.negative_ttl;
        opts.stale_if_error = c->cache.stale_if_error;
        cache = std::make_shared<core::verification_cache>(opts, clk);
        cfg = c;
        clerk = std::make_shared<fake_clerk>();
        auth = proxy::make_clerk_authenticator(ioc.get_executor(), cfg, cache, m, clerk, clk);
    }

    proxy::auth_result check(std::string_view token, core::token_class cls = opaque_m2m,
                             std::chrono::milliseconds budget = 2s) {
        std::optional<proxy::auth_result> out;
        boost::asio::co_spawn(
            ioc,
            [&]() -> proxy::task<void> {
                out = co_await auth->authenticate(token, cls,
                                                  std::chrono::steady_clock::now() + budget);
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
        ioc.restart();
        ioc.run();
        REQUIRE(out);
        return *out;
    }

    boost::asio::io_context ioc;
    testing::fake_clock clk;
    proxy::metrics m;
    std::shared_ptr<const config::config> cfg;
    std::shared_ptr<core::verification_cache> cache;
    std::shared_ptr<fake_clerk> clerk;
    std::shared_ptr<proxy::authenticator> auth;
};

}  // namespace clerk::testing::authenticator_fixtures
