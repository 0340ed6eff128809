// The authenticator when Clerk fails: retries, backoff, deadlines, 429, bad key, stale_if_error.
#include "proxy/auth/clerk_authenticator.hpp"

#include "clerk_authenticator_fixtures.hpp"
#include "proxy/auth/clerk_verifier.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace clerk;
using namespace clerk::testing::authenticator_fixtures;
using namespace std::chrono_literals;
using proxy::clerk_http_reply;
using steady = std::chrono::steady_clock;

TEST_CASE("5xx and transport errors are retried, then 503", "[clerk_authenticator]") {
    SECTION("recovers on retry") {
        fixture f;
        clerk_http_reply timeout;
        timeout.error = proxy::clerk_transport_error::timeout;
        f.clerk->script = {reply(500), timeout, reply(200, token_json("mt_1"))};
        CHECK(f.check("mt_x").decision.allowed());
        CHECK(f.clerk->calls == 3);
        auto metrics = f.m.render();
        CHECK(metrics.find(R"(clerk_proxy_clerk_requests_total{status="500"} 1)") !=
              std::string::npos);
        CHECK(metrics.find(R"(clerk_proxy_clerk_requests_total{status="200"} 1)") !=
              std::string::npos);
    }
    SECTION("gives up after clerk.retries") {
        fixture f;
        f.clerk->script = {reply(503)};
        auto r = f.check("mt_x");
        CHECK(r.decision.kind == core::decision_kind::auth_unavailable);
        CHECK(f.clerk->calls == 3);  // 1 + retries
        CHECK(f.cache->size() == 0);
        CHECK(f.cache->negative_size() == 0);
        f.clerk->script = {reply(200, token_json("mt_1"))};
        CHECK(f.check("mt_x").decision.allowed());  // nothing was cached: recovery is immediate
    }
    SECTION("malformed 200 is never accepted") {
        fixture f([](config::config& c) { c.clerk.retries = 0; });
        f.clerk->script = {reply(200, R"({"object":"machine_to_machine_token")")};
        CHECK(f.check("mt_x").decision.kind == core::decision_kind::auth_unavailable);
        CHECK(f.clerk->calls == 1);
    }
    SECTION("retries stop at the deadline") {
        fixture f([](config::config& c) { c.clerk.retries = 50; });
        f.clerk->script = {reply(500)};
        auto start = steady::now();
        auto r = f.check("mt_x", opaque_m2m, 300ms);
        CHECK(r.decision.kind == core::decision_kind::auth_unavailable);
        CHECK(steady::now() - start < 1s);
        CHECK(f.clerk->calls < 10);
    }
}

TEST_CASE("per-call timeout is min(clerk.timeout, deadline)", "[clerk_authenticator]") {
    fixture f([](config::config& c) { c.clerk.timeout = 10s; });
    f.clerk->script = {reply(200, token_json("mt_1"))};
    auto before = steady::now();
    f.check("mt_x", opaque_m2m, 700ms);
    REQUIRE(f.clerk->deadlines.size() == 1);
    CHECK(f.clerk->deadlines[0] - before <= 710ms);
}

TEST_CASE("429 honours Retry-After when it fits", "[clerk_authenticator]") {
    SECTION("fits") {
        fixture f;
        f.clerk->script = {reply(429, "", "0"), reply(200, token_json("mt_1"))};
        CHECK(f.check("mt_x").decision.allowed());
        CHECK(f.clerk->calls == 2);
    }
    SECTION("does not fit") {
        fixture f;
        f.clerk->script = {reply(429, "", "30"), reply(200, token_json("mt_1"))};
        auto start = steady::now();
        auto r = f.check("mt_x");
        CHECK(r.decision.kind == core::decision_kind::auth_unavailable);
        CHECK(f.clerk->calls == 1);
        CHECK(steady::now() - start < 1s);
    }
}

TEST_CASE("401/403: our key is wrong, nothing cached", "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(401, R"({"errors":[{"code":"machine_secret_key_invalid"}]})")};
    auto r = f.check("mt_x");
    CHECK(r.decision.kind == core::decision_kind::auth_unavailable);
    CHECK(f.clerk->calls == 1);  // not retried
    f.check("mt_x");
    CHECK(f.clerk->calls == 2);  // not cached
    CHECK(f.cache->negative_size() == 0);
}

TEST_CASE("stale_if_error serves known tokens through an outage", "[clerk_authenticator]") {
    fixture f([](config::config& c) {
        c.cache.ttl = 1s;
        c.cache.stale_if_error = 60s;
        c.clerk.retries = 0;
    });
    f.clerk->script = {reply(200, token_json("mt_1"))};
    REQUIRE(f.check("mt_known").decision.allowed());
    f.clk.advance(2s);  // past ttl
    f.clerk->script = {reply(500)};
    auto r = f.check("mt_known");
    CHECK(r.decision.allowed());
    CHECK(r.cache == core::cache_result::stale);
    REQUIRE(r.id);
    CHECK(r.id->token_id == "mt_1");
    auto unknown = f.check("mt_unknown");
    CHECK(unknown.decision.kind == core::decision_kind::auth_unavailable);
    f.clk.advance(61s);  // past ttl + stale_if_error
    CHECK(f.check("mt_known").decision.kind == core::decision_kind::auth_unavailable);
    CHECK(f.m.render().find(R"(clerk_proxy_cache_lookups_total{result="stale"} 1)") !=
          std::string::npos);
}

TEST_CASE("without stale_if_error an outage is a 503 even for known tokens",
          "[clerk_authenticator]") {
    fixture f([](config::config& c) {
        c.cache.ttl = 1s;
        c.clerk.retries = 0;
    });
    f.clerk->script = {reply(200, token_json("mt_1"))};
    REQUIRE(f.check("mt_known").decision.allowed());
    f.clk.advance(2s);
    f.clerk->script = {reply(500)};
    CHECK(f.check("mt_known").decision.kind == core::decision_kind::auth_unavailable);
}

TEST_CASE("backoff is jittered exponential", "[clerk_authenticator]") {
    for (int i = 0; i < 100; ++i) {
        auto b0 = proxy::clerk_verifier::backoff(0);
        CHECK(b0 >= 25ms);
        CHECK(b0 <= 75ms);
        auto b2 = proxy::clerk_verifier::backoff(2);
        CHECK(b2 >= 100ms);
        CHECK(b2 <= 300ms);
    }
}

TEST_CASE("a verification's budget covers every attempt and the backoffs, at most 30 s",
          "[clerk_authenticator]") {
    using std::chrono::milliseconds;
    config::clerk_config c;
    c.timeout = milliseconds(2000);
    c.retries = 2;  // 3 calls, 2 backoffs
    CHECK(proxy::clerk_verifier::budget(c) == milliseconds(3 * 2000 + 2 * 250));
    c.retries = 0;
    CHECK(proxy::clerk_verifier::budget(c) == milliseconds(2000));
    c.retries = -1;  // treated as 0
    CHECK(proxy::clerk_verifier::budget(c) == milliseconds(2000));
    c.retries = 100;
    CHECK(proxy::clerk_verifier::budget(c) == std::chrono::seconds(30));
    // With the default clerk.retries (2) each backoff fits in its 250 ms share (a later one may
    // not: the verifier then stops retrying when the next attempt would pass the deadline).
    for (int attempt = 0; attempt < 2; ++attempt) {
        CHECK(proxy::clerk_verifier::backoff(attempt) < milliseconds(250));
    }
}
