// Clerk verification in the request path: identity headers, the §6 refusals and the cache.
#include "clerk_fixtures.hpp"
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <latch>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

using namespace clerk::it;
using namespace clerk::it::clerk_fixtures;
using json = nlohmann::json;

namespace {

/// The proxy must still run; if not, show how it ended.
void check_alive(proxy_process& proxy) {
    const bool alive = proxy.proc().running();
    if (!alive) {
        const std::string out = proxy.proc().output();
        INFO("proxy exited; last output:\n"
             << out.substr(out.size() > 4000 ? out.size() - 4000 : 0));
        CHECK(alive);
    }
}

}  // namespace

TEST_CASE("a valid token is forwarded with the identity headers", "[it][clerk]") {
    clerk_env env;
    auto tok = env.knobs.mint(env.c_id, {{"claims", {{"tenant", "t1"}, {"name", "Zoë"}}}});
    const std::string token = tok["token"];
    SECTION("Authorization stripped (default)") {
        proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url()));
        http_client c(proxy.port());
        auto h = bearer(token);
        h.emplace_back("X-Clerk-Subject", "mch_spoofed");
        h.emplace_back("X-Clerk-Scopes", "mch_admin");
        auto r = c.get("/api/things?x=1", h);
        CHECK(r.status == 200);
        REQUIRE(env.up.wait_for_requests(1));
        auto seen = env.up.requests().at(0);
        CHECK(seen.target == "/api/things?x=1");
        CHECK(seen.count("Authorization") == 0);
        CHECK(seen.count("X-Clerk-Subject") == 1);
        CHECK(seen.header("X-Clerk-Subject") == env.c_id);
        CHECK(seen.header("X-Clerk-Machine-Id") == env.c_id);
        CHECK(seen.header("X-Clerk-Token-Id") == tok["id"].get<std::string>());
        CHECK(seen.header("X-Clerk-Token-Type") == "m2m_token");
        CHECK(seen.count("X-Clerk-Scopes") == 1);
        CHECK(seen.header("X-Clerk-Scopes") == env.a().id + "," + env.b().id);
        CHECK(seen.header("X-Clerk-Claims") == R"({"name":"Zo\u00eb","tenant":"t1"})");
        check_no_token_in(proxy.proc().output(), {token});
    }
    SECTION("forward_authorization: true keeps it") {
        proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url(), {},
                                                  "auth:\n  forward_authorization: true\n"));
        http_client c(proxy.port());
        CHECK(c.get("/api/x", bearer(token)).status == 200);
        REQUIRE(env.up.wait_for_requests(1));
        CHECK(env.up.requests().at(0).header("Authorization") == "Bearer " + token);
    }
    SECTION("verified with the receiving machine's key") {
        // b's machine key: c's token is scoped to b; a token of an unscoped machine is not.
        proxy_process proxy(
            env.dir,
            clerk_config(env.up.url(), env.emu.url(),
                         "  machine_secret_key: \"" + env.b().secret_key + "\"\n", {}, false));
        http_client c(proxy.port());
        CHECK(c.get("/api/x", bearer(token)).status == 200);
        auto lonely =
            env.knobs.post("/__emulator/machines", {{"name", "lonely"}, {"scopes", json::array()}});
        const std::string unscoped = env.knobs.mint(lonely["id"].get<std::string>())["token"];
        auto r = c.get("/api/x", bearer(unscoped));
        CHECK(r.status == 401);
        CHECK(r.body == problem(r, "invalid_token", "not_found"));
    }
}

TEST_CASE("refusals have the exact §6 bodies", "[it][clerk]") {
    clerk_env env;
    proxy_process proxy(env.dir,
                        clerk_config(env.up.url(), env.emu.url(), {},
                                     "routes:\n  - path: /admin/*\n    require_scopes: "
                                     "[mch_nobody]\n  - path: /ops/*\n    allow_subjects: [" +
                                         env.a().id + "]\n"));
    http_client c(proxy.port());
    const std::string good = env.knobs.mint(env.c_id)["token"];

    auto missing = c.get("/api/x");
    CHECK(missing.status == 401);
    CHECK(missing.body == problem(missing, "missing_token"));
    CHECK(missing.header("WWW-Authenticate") == R"(Bearer realm="clerk-m2m-proxy")");

    auto malformed = c.get("/api/x", bearer("not-a-clerk-token"));
    CHECK(malformed.status == 401);
    CHECK(malformed.body == problem(malformed, "invalid_token", "malformed"));
    CHECK(malformed.header("WWW-Authenticate") == R"(Bearer error="invalid_token")");

    auto unknown = c.get("/api/x", bearer("mt_0123456789abcdef0123456789abcdef"));
    CHECK(unknown.status == 401);
    CHECK(unknown.body == problem(unknown, "invalid_token", "not_found"));

    auto revoked_tok = env.knobs.mint(env.c_id);
    env.knobs.revoke(revoked_tok["id"]);
    auto revoked = c.get("/api/x", bearer(revoked_tok["token"]));
    CHECK(revoked.status == 401);
    CHECK(revoked.body == problem(revoked, "invalid_token", "revoked"));

    const long long past_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count() -
                              60000;
    const std::string expired_tok = env.knobs.mint(env.c_id, {{"expiration_ms", past_ms}})["token"];
    auto expired = c.get("/api/x", bearer(expired_tok));
    CHECK(expired.status == 401);
    CHECK(expired.body == problem(expired, "invalid_token", "expired"));

    auto scope = c.get("/admin/x", bearer(good));
    CHECK(scope.status == 403);
    CHECK(scope.body.find(R"("error":"insufficient_scope")") != std::string::npos);
    CHECK(scope.header("WWW-Authenticate") == R"(Bearer error="insufficient_scope")");
    CHECK(c.get("/ops/x", bearer(good)).status == 403);  // c is not an allowed subject
    CHECK(c.get("/api/x", bearer(good)).status == 200);  // policy per route, same cached token

    // Types the config does not accept are refused without a Clerk call.
    const long before = env.knobs.verify_calls();
    auto api_key = c.get("/api/x", bearer("ak_something"));
    CHECK(api_key.status == 401);
    CHECK(api_key.body == problem(api_key, "invalid_token", "token_type_not_accepted"));
    CHECK(env.knobs.verify_calls() == before);
    CHECK(env.up.requests().size() == 1);
    check_no_token_in(proxy.proc().output(), {good, revoked_tok["token"], expired_tok});
}

TEST_CASE("the cache: one Clerk call per token", "[it][clerk][cache]") {
    clerk_env env;
    SECTION("100 sequential requests -> 1 verify call") {
        proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url()));
        http_client c(proxy.port());
        const std::string token = env.knobs.mint(env.c_id)["token"];
        for (int i = 0; i < 100; ++i) {
            REQUIRE(c.get("/api/seq", bearer(token)).status == 200);
        }
        CHECK(env.knobs.verify_calls() == 1);
        CHECK(metric(proxy.admin_port(), R"(clerk_proxy_cache_lookups_total{result="hit"})") == 99);
        // One verify call plus the JWKS fetch at start (the config has the instance key).
        const std::string ok200 = R"(clerk_proxy_clerk_requests_total{status="200"})";
        CHECK(metric(proxy.admin_port(), ok200) == 2);
    }
    SECTION("200 concurrent first requests -> exactly 1 verify call") {
        proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url(), "  timeout: 5s\n"));
        const std::string token = env.knobs.mint(env.c_id)["token"];
        env.knobs.latency(300);  // the first verification is still in flight when all arrive
        constexpr int n = 200;
        std::vector<std::unique_ptr<http_client>> clients;
        for (int i = 0; i < n; ++i) {
            clients.push_back(std::make_unique<http_client>(proxy.port()));
        }
        std::latch go(n);
        std::atomic<int> ok{0};
        std::vector<std::thread> threads;
        for (int i = 0; i < n; ++i) {
            threads.emplace_back([&, i] {
                go.arrive_and_wait();
                try {
                    if (clients[i]->get("/api/burst", bearer(token)).status == 200) {
                        ++ok;
                    }
                } catch (...) {
                }
            });
        }
        for (auto& t : threads) {
            t.join();
        }
        CHECK(ok == n);
        const long calls = env.knobs.verify_calls();
        WARN("200 concurrent first requests with one token: " << calls << " verify call(s)");
        CHECK(calls == 1);
    }
    SECTION("10,000 requests over 100 tokens -> exactly 100 verify calls") {
        proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url(), {},
                                                  "cache:\n  ttl: 60s\nlog:\n  access_log: "
                                                  "false\n"));
        std::vector<std::string> tokens;
        for (int i = 0; i < 100; ++i) {
            tokens.push_back(env.knobs.mint(env.c_id)["token"]);
        }
        constexpr int threads_n = 10;
        constexpr int per_thread = 1000;
        std::atomic<int> ok{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < threads_n; ++t) {
            threads.emplace_back([&, t] {
                try {
                    http_client c(proxy.port());
                    for (int i = 0; i < per_thread; ++i) {
                        const auto& tok = tokens[static_cast<std::size_t>((t * 7 + i) % 100)];
                        if (c.get("/api/load", bearer(tok)).status == 200) {
                            ++ok;
                        }
                    }
                } catch (...) {
                }
            });
        }
        for (auto& t : threads) {
            t.join();
        }
        check_alive(proxy);
        CHECK(ok == threads_n * per_thread);
        const long calls = env.knobs.verify_calls();
        WARN("10,000 requests over 100 tokens: " << calls << " verify call(s)");
        CHECK(calls == 100);
        CHECK(metric(proxy.admin_port(), R"(clerk_proxy_cache_entries)") == 100);
    }
    SECTION("an unknown token is remembered (negative_ttl)") {
        proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url()));
        http_client c(proxy.port());
        const std::string unknown = "mt_ffffffffffffffffffffffffffffffff";
        CHECK(c.get("/api/x", bearer(unknown)).status == 401);
        auto again = c.get("/api/x", bearer(unknown));
        CHECK(again.status == 401);
        CHECK(again.body == problem(again, "invalid_token", "not_found"));
        CHECK(env.knobs.verify_calls() == 1);
        CHECK(metric(proxy.admin_port(),
                     R"(clerk_proxy_cache_lookups_total{result="negative_hit"})") == 1);
    }
}

TEST_CASE("revocation is visible once the cache entry expires", "[it][clerk]") {
    clerk_env env;
    proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url(), {},
                                              "cache:\n  ttl: 500ms\nlog:\n  level: trace\n"));
    http_client c(proxy.port());
    auto tok = env.knobs.mint(env.c_id);
    const std::string token = tok["token"];
    REQUIRE(c.get("/api/x", bearer(token)).status == 200);
    env.knobs.revoke(tok["id"]);
    http_response last;
    CHECK(eventually(
        [&] {
            last = c.get("/api/x", bearer(token));
            return last.status == 401;
        },
        10s));
    CHECK(last.body == problem(last, "invalid_token", "revoked"));
    // Now remembered as revoked: no further Clerk calls for a while.
    const long calls = env.knobs.verify_calls();
    CHECK(c.get("/api/x", bearer(token)).status == 401);
    CHECK(env.knobs.verify_calls() == calls);
    check_no_token_in(proxy.proc().output(), {token});
}

TEST_CASE("a reload that stops accepting a type refuses tokens of it that are cached",
          "[it][clerk][reload]") {
    // The data path looks a token up before classifying it (a cached JWT costs no parsing), so
    // the acceptance check must come from the cached identity's type.
    clerk_env env;
    proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url()));
    http_client c(proxy.port());
    const std::string opaque = env.knobs.mint(env.c_id)["token"];
    const std::string jwt =
        env.knobs.mint(env.c_id, {{"token_format", "jwt"}})["token"].get<std::string>();
    CHECK(c.get("/api/x", bearer(opaque)).status == 200);
    CHECK(c.get("/api/x", bearer(jwt)).status == 200);

    env.dir.write("proxy.yaml", clerk_config(env.up.url(), env.emu.url(), {},
                                             "auth:\n  accepts_token: [api_key]\n"));
    const auto from = proxy.proc().line_count();
    proxy.proc().signal(SIGHUP);
    REQUIRE(proxy.proc().wait_for_line(std::regex("configuration reloaded"), 10s, from));
    for (const auto& t : {opaque, jwt}) {
        const auto r = c.get("/api/x", bearer(t));
        CHECK(r.status == 401);
        CHECK(r.body == problem(r, "invalid_token", "token_type_not_accepted"));
    }
    CHECK(env.up.requests().size() == 2);
}
