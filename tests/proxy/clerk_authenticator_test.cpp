// The authenticator's cache: hits, negative and revoked entries, expiry, miss rate, single flight.
#include "proxy/auth/clerk_authenticator.hpp"

#include "clerk_authenticator_fixtures.hpp"
#include "fakes/fake_clock.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace clerk;
using namespace clerk::testing::authenticator_fixtures;
using namespace std::chrono_literals;
using proxy::clerk_http_request;
using steady = std::chrono::steady_clock;

namespace {

long long now_ms(const testing::fake_clock& c) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(c.now().time_since_epoch())
        .count();
}

}  // namespace

TEST_CASE("valid opaque token: one Clerk call, then cache hits", "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(200, token_json("mt_1"))};
    auto r = f.check("mt_secret");
    REQUIRE(r.decision.allowed());
    REQUIRE(r.id);
    CHECK(r.id->who->subject == "mch_a");
    CHECK(r.id->token_id == "mt_1");
    CHECK(r.cache == core::cache_result::miss);
    for (int i = 0; i < 50; ++i) {
        auto again = f.check("mt_secret");
        CHECK(again.decision.allowed());
        CHECK(again.cache == core::cache_result::hit);
    }
    CHECK(f.clerk->calls == 1);
    REQUIRE(f.clerk->requests.size() == 1);
    const auto& req = f.clerk->requests[0];
    CHECK(req.verb == clerk_http_request::method::post);
    CHECK(req.path == "/m2m_tokens/verify");
    CHECK(req.body == R"({"token":"mt_secret"})");
    CHECK(req.bearer == "ak_machine");
    auto metrics = f.m.render();
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="hit"} 50)") != std::string::npos);
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="miss"} 1)") != std::string::npos);
}

TEST_CASE("authenticate_bearer_now answers what authenticate_bearer would, without I/O",
          "[clerk_authenticator]") {
    fixture f;
    const core::token_acceptance m2m;  // m2m_token only
    f.clerk->script = {reply(200, token_json("mt_1")),
                       reply(404, R"({"errors":[{"code":"resource_not_found"}]})")};
    // Not cached yet: no answer without I/O, and nothing counted.
    CHECK_FALSE(f.auth->authenticate_bearer_now("mt_secret", m2m));
    const auto before = f.m.render();
    CHECK(before.find(R"(clerk_proxy_cache_lookups_total{result="hit"} 0)") != std::string::npos);
    CHECK(before.find(R"(clerk_proxy_cache_lookups_total{result="miss"} 0)") != std::string::npos);
    auto bearer = [&](std::string_view token) {
        std::optional<proxy::auth_result> out;
        net::co_spawn(
            f.ioc,
            [&]() -> proxy::task<void> {
                out = co_await f.auth->authenticate_bearer(token, m2m, steady::now() + 2s);
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
        f.ioc.restart();
        f.ioc.run();
        REQUIRE(out);
        return *out;
    };
    const auto first = bearer("mt_secret");
    REQUIRE(first.decision.allowed());
    CHECK(first.cache == core::cache_result::miss);
    CHECK(bearer("mt_unknown").decision.reason == "not_found");
    CHECK(f.clerk->calls == 2);

    // Cached: the same identity, as a hit, counted once per answer.
    const auto hit = f.auth->authenticate_bearer_now("mt_secret", m2m);
    REQUIRE(hit);
    CHECK(hit->decision.allowed());
    CHECK(hit->cache == core::cache_result::hit);
    CHECK(hit->type == core::token_type::m2m_token);
    CHECK(hit->id == first.id);
    // Negatively cached, malformed, and a type not accepted: refused at once, as the coroutine
    // path refuses them.
    const auto negative = f.auth->authenticate_bearer_now("mt_unknown", m2m);
    REQUIRE(negative);
    CHECK(negative->decision.reason == "not_found");
    CHECK(negative->cache == core::cache_result::negative_hit);
    const auto malformed = f.auth->authenticate_bearer_now("not a token", m2m);
    REQUIRE(malformed);
    CHECK(malformed->decision.kind == core::decision_kind::invalid_token);
    CHECK(malformed->decision.reason == bearer("not a token").decision.reason);
    const auto api_key = f.auth->authenticate_bearer_now("ak_abc", m2m);
    REQUIRE(api_key);
    CHECK(api_key->decision.reason == bearer("ak_abc").decision.reason);
    CHECK(f.clerk->calls == 2);
    const auto metrics = f.m.render();
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="hit"} 1)") != std::string::npos);
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="negative_hit"} 1)") !=
          std::string::npos);
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="miss"} 2)") != std::string::npos);
}

TEST_CASE("unknown token is negatively cached", "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(404, R"({"errors":[{"code":"resource_not_found"}]})")};
    auto r = f.check("mt_unknown");
    CHECK(r.decision.kind == core::decision_kind::invalid_token);
    CHECK(r.decision.reason == "not_found");
    auto again = f.check("mt_unknown");
    CHECK(again.decision.kind == core::decision_kind::invalid_token);
    CHECK(again.decision.reason == "not_found");
    CHECK(again.cache == core::cache_result::negative_hit);
    CHECK(f.clerk->calls == 1);
    f.clk.advance(11s);  // past negative_ttl
    f.check("mt_unknown");
    CHECK(f.clerk->calls == 2);
}

TEST_CASE("revoked in a 200 is cached as revoked", "[clerk_authenticator]") {
    fixture f;
    auto body = nlohmann::json::parse(token_json("mt_1"));
    body["revoked"] = true;
    f.clerk->script = {reply(200, body.dump())};
    CHECK(f.check("mt_r").decision.reason == "revoked");
    CHECK(f.check("mt_r").cache == core::cache_result::negative_hit);
    CHECK(f.clerk->calls == 1);
}

TEST_CASE("a positive entry never outlives the token's expiration", "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(200, token_json("mt_1", now_ms(f.clk) + 5000))};
    CHECK(f.check("mt_e").decision.allowed());
    CHECK(f.check("mt_e").cache == core::cache_result::hit);
    f.clk.advance(6s);
    auto r = f.check("mt_e");  // Clerk still says 200, but the expiration is now in the past
    CHECK(r.decision.kind == core::decision_kind::invalid_token);
    CHECK(r.decision.reason == "expired");
    CHECK(f.clerk->calls == 2);
}

TEST_CASE("cache.max_miss_rate bounds Clerk calls for unknown tokens; past it 503",
          "[clerk_authenticator]") {
    fixture f([](config::config& c) { c.cache.max_miss_rate = 5; });
    f.clerk->script = {reply(404, "{}")};
    int limited = 0;
    for (int i = 0; i < 50; ++i) {
        const auto r = f.check("mt_flood" + std::to_string(i));
        if (r.decision.kind == core::decision_kind::auth_unavailable) {
            CHECK(r.decision.reason == "miss_rate_limited");
            ++limited;
        } else {
            CHECK(r.decision.kind == core::decision_kind::invalid_token);
        }
    }
    // A bucket of one second's worth (5): a burst of 50 makes at most 5 calls (plus what
    // refills while the loop runs, well under a second).
    CHECK(f.clerk->calls <= 6);
    CHECK(limited >= 44);
}

TEST_CASE("concurrent misses across threads make exactly one Clerk call", "[clerk_authenticator]") {
    fixture f;
    f.clerk->delay = 50ms;
    f.clerk->script = {reply(200, token_json("mt_1"))};
    constexpr int n = 200;
    std::atomic<int> allowed{0}, done{0};
    for (int i = 0; i < n; ++i) {
        net::co_spawn(
            f.ioc,
            [&]() -> proxy::task<void> {
                auto r = co_await f.auth->authenticate("mt_shared", opaque_m2m, steady::now() + 2s);
                if (r.decision.allowed() && r.id && r.id->token_id == "mt_1") {
                    ++allowed;
                }
                ++done;
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
    }
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&] { f.ioc.run(); });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(done == n);
    CHECK(allowed == n);
    CHECK(f.clerk->calls == 1);
}

TEST_CASE("concurrent misses on distinct tokens are not coalesced", "[clerk_authenticator]") {
    fixture f;
    f.clerk->delay = 20ms;
    f.clerk->script = {reply(200, token_json("mt_1"))};
    std::atomic<int> done{0};
    for (int i = 0; i < 20; ++i) {
        net::co_spawn(
            f.ioc,
            [&, i]() -> proxy::task<void> {
                std::string tok = "mt_tok" + std::to_string(i % 10);
                co_await f.auth->authenticate(tok, opaque_m2m, steady::now() + 2s);
                ++done;
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
    }
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) {
        threads.emplace_back([&] { f.ioc.run(); });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(done == 20);
    CHECK(f.clerk->calls == 10);
}
