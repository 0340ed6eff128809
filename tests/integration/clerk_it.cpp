// Clerk verification in the request path (issue #4) through the real binaries: the proxy, the
// Clerk emulator and a recording upstream, all on 127.0.0.1 port 0. Waits are conditions with
// deadlines; Clerk call counts come from the emulator's /__emulator/stats.
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include "fakes/jwt_minter.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <latch>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

using namespace clerk::it;
using json = nlohmann::json;

namespace {

/// A proxy config pointing at `api_url` with the instance key; `clerk_extra` lines go into the
/// clerk section (indented by two spaces), `extra` is appended at top level.
std::string clerk_config(const std::string& upstream_url, const std::string& api_url,
                         const std::string& clerk_extra = {}, const std::string& extra = {},
                         bool with_instance_key = true) {
    std::string y =
        "listen: \"127.0.0.1:0\"\n"
        "upstream:\n  url: \"" +
        upstream_url +
        "\"\n"
        "clerk:\n  api_url: \"" +
        api_url + "\"\n";
    if (with_instance_key) {
        y += std::string("  secret_key: \"") + instance_key + "\"\n";
    }
    y += clerk_extra;
    y += "admin:\n  listen: \"127.0.0.1:0\"\nthreads: 4\n";
    y += extra;
    return y;
}

/// Timeouts short enough for failure tests, with the default 2 retries.
const std::string fast_clerk = "  timeout: 300ms\n  retries: 2\n";

/// The exact §6 body for a refusal, with the request id the proxy echoed.
std::string problem(const http_response& r, const std::string& error,
                    const std::string& reason = {}) {
    json b{{"error", error}, {"request_id", r.header("X-Request-Id")}};
    if (!reason.empty()) {
        b["reason"] = reason;
    }
    return b.dump();
}

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

void check_no_token_in(const std::string& output, const std::vector<std::string>& tokens) {
    for (const auto& t : tokens) {
        INFO("token leaked into the proxy's output");
        CHECK(output.find(t) == std::string::npos);
    }
}

struct clerk_env {
    clerk_env() : emu({"a", "b"}), knobs(emu.port()) {
        // "c" may call a and b: its tokens carry scopes [a, b].
        auto c = knobs.post(
            "/__emulator/machines",
            {{"name", "c"}, {"scopes", {emu.machines().at(0).id, emu.machines().at(1).id}}});
        c_id = c["id"].get<std::string>();
    }
    const emulator_process::machine& a() const { return emu.machines().at(0); }
    const emulator_process::machine& b() const { return emu.machines().at(1); }

    temp_dir dir;
    emulator_process emu;
    recording_upstream up;
    clerk_knobs knobs;
    std::string c_id;
};

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

TEST_CASE("Clerk failures: 503 auth_unavailable, then recovery", "[it][clerk][failure]") {
    clerk_env env;
    proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url(), fast_clerk));
    http_client c(proxy.port());
    // Warm the pool so that "close" also exercises the stale-pooled-connection path.
    CHECK(c.get("/api/x", bearer(env.knobs.mint(env.c_id)["token"])).status == 200);

    struct mode {
        const char* name;
        int status;
        int retry_after;
    };
    const mode modes[] = {{"status", 500, -1}, {"status", 502, -1}, {"status", 429, 1},
                          {"status", 429, 30}, {"hang", 500, -1},   {"close", 500, -1},
                          {"garbage", 500, -1}};
    std::vector<std::string> tokens;
    for (const auto& m : modes) {
        INFO("mode " << m.name << " status " << m.status << " retry_after " << m.retry_after);
        const std::string token = env.knobs.mint(env.c_id)["token"];
        tokens.push_back(token);
        env.knobs.fail(1000000, m.name, m.status, m.retry_after);
        const long before = env.knobs.verify_calls();
        const auto start = std::chrono::steady_clock::now();
        auto r = c.get("/api/x", bearer(token));
        const auto took = std::chrono::steady_clock::now() - start;
        CHECK(r.status == 503);
        CHECK(r.body == problem(r, "auth_unavailable", json::parse(r.body).value("reason", "")));
        CHECK(r.header("Retry-After") == "1");
        CHECK(took < 5s);  // bounded by the verification budget, whatever Clerk does
        const long calls = env.knobs.verify_calls() - before;
        CHECK(calls >= 1);
        // 1 + clerk.retries attempts; a connection closed before any response byte is retried
        // once on a fresh one (the emulator counts both).
        CHECK(calls <= 6);
        env.knobs.fail(0, "status");
        // Nothing was cached: the same token works as soon as Clerk is healthy again.
        auto healed = c.get("/api/x", bearer(token));
        INFO(healed.body);
        CHECK(healed.status == 200);
    }
    CHECK(env.up.requests().size() == 1 + std::size(modes));
    check_no_token_in(proxy.proc().output(), tokens);
}

TEST_CASE("a wrong Clerk key: 503 and an error naming the key", "[it][clerk][failure]") {
    clerk_env env;
    proxy_process proxy(env.dir,
                        clerk_config(env.up.url(), env.emu.url(),
                                     "  machine_secret_key: \"ak_wrong_value_123\"\n", {}, false));
    http_client c(proxy.port());
    const std::string token = env.knobs.mint(env.c_id)["token"];
    auto r = c.get("/api/x", bearer(token));
    CHECK(r.status == 503);
    CHECK(r.header("Retry-After") == "1");
    CHECK(c.get("/api/x", bearer(token)).status == 503);
    CHECK(env.knobs.verify_calls() == 2);  // never cached, never retried
    CHECK(proxy.proc().wait_for_line(std::regex("clerk\\.machine_secret_key"), 5s));
    CHECK(proxy.proc().output().find("ak_wrong_value_123") == std::string::npos);
}

TEST_CASE("stale_if_error serves known tokens through an outage", "[it][clerk][stale]") {
    clerk_env env;
    proxy_process proxy(
        env.dir, clerk_config(env.up.url(), env.emu.url(), "  timeout: 300ms\n  retries: 0\n",
                              "cache:\n  ttl: 500ms\n  stale_if_error: 60s\n"));
    http_client c(proxy.port());
    const std::string known = env.knobs.mint(env.c_id)["token"];
    const std::string unknown = env.knobs.mint(env.c_id)["token"];
    REQUIRE(c.get("/api/x", bearer(known)).status == 200);
    env.knobs.fail(1000000, "status", 500);
    const std::string stale = R"(clerk_proxy_cache_lookups_total{result="stale"})";
    // Within ttl the entry is a plain hit; past it, Clerk fails and the stale entry answers.
    bool all_ok = true;
    CHECK(eventually(
        [&] {
            all_ok = all_ok && c.get("/api/x", bearer(known)).status == 200;
            return metric(proxy.admin_port(), stale) >= 1;
        },
        10s));
    CHECK(all_ok);
    CHECK(env.knobs.verify_calls() >= 2);
    auto refused = c.get("/api/x", bearer(unknown));
    CHECK(refused.status == 503);
    CHECK(refused.header("Retry-After") == "1");
    CHECK(proxy.proc().wait_for_line(std::regex("cache=stale|\"cache\":\"stale\""), 5s));
    env.knobs.fail(0, "status");
    CHECK(c.get("/api/x", bearer(unknown)).status == 200);
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

TEST_CASE("with no JWT key source, M2M JWTs get a clear 401 and a start-up warning",
          "[it][clerk][jwt]") {
    clerk_env env;
    proxy_process proxy(
        env.dir, clerk_config(env.up.url(), env.emu.url(),
                              "  machine_secret_key: \"" + env.b().secret_key + "\"\n", {}, false));
    CHECK(proxy.proc().wait_for_line(std::regex("jwt_not_supported"), 5s));
    http_client c(proxy.port());
    const std::string jwt = env.knobs.mint(env.c_id, {{"token_format", "jwt"}})["token"];
    const auto r = c.get("/api/x", bearer(jwt));
    CHECK(r.status == 401);
    CHECK(r.body == problem(r, "invalid_token", "jwt_not_supported"));
    CHECK(env.up.requests().empty());
    CHECK(env.knobs.verify_calls() == 0);
}

TEST_CASE("M2M JWTs are verified locally against the JWKS", "[it][clerk][jwt]") {
    clerk_env env;
    proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url()));
    http_client c(proxy.port());
    auto tok = env.knobs.mint(env.c_id, {{"token_format", "jwt"}, {"claims", {{"k", "v"}}}});
    const std::string jwt = tok["token"];
    auto r = c.get("/api/x", bearer(jwt));
    CHECK(r.status == 200);
    REQUIRE(env.up.wait_for_requests(1));
    CHECK(env.up.requests().at(0).header("X-Clerk-Subject") == env.c_id);
    CHECK(env.up.requests().at(0).header("X-Clerk-Token-Id") == tok["id"].get<std::string>());
    CHECK(env.knobs.verify_calls() == 0);  // no network on the hot path

    // Key rotation: an unknown kid triggers one JWKS re-fetch.
    env.knobs.post("/__emulator/rotate_jwks", json::object());
    const std::string rotated = env.knobs.mint(env.c_id, {{"token_format", "jwt"}})["token"];
    CHECK(c.get("/api/x", bearer(rotated)).status == 200);

    // A forged signature is refused.
    std::string forged = jwt;
    forged.back() = forged.back() == 'A' ? 'B' : 'A';
    CHECK(c.get("/api/x", bearer(forged)).status == 401);
    check_no_token_in(proxy.proc().output(), {jwt, rotated});
}

namespace {

/// A CA and an expired server certificate (notAfter before notBefore) for 127.0.0.1.
test_pki make_expired_pki(const temp_dir& dir) {
    const std::string d = dir.path().string() + "/";
    test_pki p{d + "exp-ca.pem", d + "exp-cert.pem", d + "exp-key.pem"};
    dir.write("exp-ext.cnf", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    const std::string q = " 2>/dev/null";
    const std::string cmds[] = {
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + d + "exp-ca.key -out " + p.ca_cert +
            " -days 2 -subj /CN=expired-test-ca" + q,
        "openssl req -newkey rsa:2048 -nodes -keyout " + p.key + " -out " + d +
            "exp.csr -subj /CN=localhost" + q,
        "openssl x509 -req -in " + d + "exp.csr -CA " + p.ca_cert + " -CAkey " + d +
            "exp-ca.key -CAcreateserial -out " + p.cert + " -days -1 -extfile " + d +
            "exp-ext.cnf" + q,
    };
    for (const auto& cmd : cmds) {
        REQUIRE(std::system(cmd.c_str()) == 0);
    }
    return p;
}

/// An emulator with an HTTPS listener too; returns its https port.
std::uint16_t tls_port(emulator_process& emu) {
    auto m = emu.proc().wait_for_line(std::regex(R"(listening on https://127\.0\.0\.1:(\d+))"));
    REQUIRE(m);
    return static_cast<std::uint16_t>(std::stoi(m->at(1)));
}

}  // namespace

TEST_CASE("HTTPS to Clerk: certificate and host name are verified", "[it][clerk][tls]") {
    temp_dir dir;
    recording_upstream up;
    const auto good = make_test_pki(dir, "good-", {"localhost"}, {"127.0.0.1"});
    const auto other_ca = make_test_pki(dir, "other-ca-", {"localhost"}, {"127.0.0.1"});
    const auto wrong_name = make_test_pki(dir, "wrong-name-", {"clerk.other.example"});
    const auto expired = make_expired_pki(dir);

    struct row {
        const char* name;
        test_pki served;
        std::string trusted_ca;
        const char* host;
        int status;
    };
    const row rows[] = {
        {"trusted, IP SAN", good, good.ca_cert, "127.0.0.1", 200},
        {"trusted, DNS name + SNI", good, good.ca_cert, "localhost", 200},
        {"untrusted CA", good, other_ca.ca_cert, "127.0.0.1", 503},
        {"certificate for another host", wrong_name, wrong_name.ca_cert, "127.0.0.1", 503},
        {"expired certificate", expired, expired.ca_cert, "127.0.0.1", 503},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        emulator_process emu({"a"}, {"--tls-listen", "127.0.0.1:0", "--tls-cert", r.served.cert,
                                     "--tls-key", r.served.key});
        const auto port = tls_port(emu);
        clerk_knobs knobs(emu.port());
        const std::string token = knobs.mint(emu.machines().at(0).id)["token"];
        const std::string url = std::string("https://") + r.host + ":" + std::to_string(port);
        proxy_process proxy(
            dir, clerk_config(up.url(), url, "  ca_file: \"" + r.trusted_ca + "\"\n" + fast_clerk));
        http_client c(proxy.port());
        auto res = c.get("/api/x", bearer(token));
        CHECK(res.status == r.status);
        if (r.status == 200) {
            CHECK(knobs.verify_calls() == 1);
            CHECK(c.get("/api/x", bearer(token)).status == 200);  // cached
        } else {
            CHECK(res.header("Retry-After") == "1");
            CHECK(knobs.verify_calls() == 0);  // no request ever reached the server
        }
    }
}

namespace {

/// A machine created through the emulator's control API that may call `scoped_to`.
std::string add_machine(clerk_knobs& knobs, const std::string& name,
                        const std::vector<std::string>& scoped_to) {
    return knobs.post("/__emulator/machines", {{"name", name}, {"scopes", scoped_to}})["id"];
}

std::string audience_yaml(const std::vector<std::string>& ids) {
    std::string y = "auth:\n  audience: [";
    for (std::size_t i = 0; i < ids.size(); ++i) {
        y += (i ? ", \"" : "\"") + ids[i] + "\"";
    }
    return y + "]\n";
}

}  // namespace

TEST_CASE("M2M JWTs are scoped to their recipient (auth.audience)", "[it][clerk][jwt][audience]") {
    clerk_env env;                                                       // c may call a and b
    const std::string d_id = add_machine(env.knobs, "d", {env.a().id});  // d may call a only
    const std::string e_id = add_machine(env.knobs, "e", {});            // e may call nobody
    // This proxy guards machine b.
    proxy_process proxy(env.dir,
                        clerk_config(env.up.url(), env.emu.url(), {}, audience_yaml({env.b().id})));
    http_client c(proxy.port());
    const auto jwt_of = [&](const std::string& machine) {
        return env.knobs.mint(machine, {{"token_format", "jwt"}})["token"].get<std::string>();
    };

    // aud [a, b] names us: forwarded.
    const std::string for_us = jwt_of(env.c_id);
    CHECK(c.get("/api/x", bearer(for_us)).status == 200);
    REQUIRE(env.up.wait_for_requests(1));
    CHECK(env.up.requests().at(0).header("X-Clerk-Machine-Id") == env.c_id);

    // aud [a]: a valid signature, but minted for another service.
    const std::string for_a = jwt_of(d_id);
    for (int i = 0; i < 3; ++i) {  // cached or not, the answer is the same
        const auto r = c.get("/api/x", bearer(for_a));
        CHECK(r.status == 401);
        CHECK(r.body == problem(r, "invalid_token", "audience_mismatch"));
        CHECK(r.header("WWW-Authenticate") == "Bearer error=\"invalid_token\"");
    }
    // aud []: no recipient at all.
    const auto none = c.get("/api/x", bearer(jwt_of(e_id)));
    CHECK(none.status == 401);
    CHECK(none.body == problem(none, "invalid_token", "audience_mismatch"));

    CHECK(env.up.requests().size() == 1);  // nothing refused reached the upstream
    CHECK(env.knobs.verify_calls() == 0);  // all local
    check_no_token_in(proxy.proc().output(), {for_us, for_a});
}

TEST_CASE("auth.audience with a string aud, and a token without aud (networkless jwt_key)",
          "[it][clerk][jwt][audience]") {
    using clerk::testing::jwt_minter;
    temp_dir dir;
    recording_upstream up;
    const auto& key = jwt_minter::shared(0);
    const std::string pem_path = dir.write("jwt.pem", key.public_pem());
    // Clerk itself is unreachable: JWTs need no network.
    proxy_process proxy(
        dir, clerk_config(up.url(), "http://127.0.0.1:9",
                          "  machine_secret_key: \"ak_unused\"\n  jwt_key: \"" + pem_path + "\"\n",
                          audience_yaml({"mch_us", "mch_alias"}), false));
    http_client c(proxy.port());
    const long long now_s = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    const auto mint = [&](const json& aud) {
        json claims = jwt_minter::m2m_claims(now_s, "mch_caller");
        if (aud.is_null()) {
            claims.erase("aud");
        } else {
            claims["aud"] = aud;
        }
        return key.mint({{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "k"}}, claims);
    };
    CHECK(c.get("/api/x", bearer(mint("mch_alias"))).status == 200);          // string
    CHECK(c.get("/api/x", bearer(mint({"mch_x", "mch_us"}))).status == 200);  // array
    const auto other = c.get("/api/x", bearer(mint("mch_other")));
    CHECK(other.body == problem(other, "invalid_token", "audience_mismatch"));
    const auto absent = c.get("/api/x", bearer(mint(nullptr)));
    CHECK(absent.status == 401);
    CHECK(absent.body == problem(absent, "invalid_token", "audience_mismatch"));
    const auto mixed = c.get("/api/x", bearer(mint({"mch_us", 7})));
    CHECK(mixed.body == problem(mixed, "invalid_token", "malformed"));
    CHECK(up.requests().size() == 2);
}

TEST_CASE("a reload that adds auth.audience refuses a JWT cached before it",
          "[it][clerk][jwt][audience][reload]") {
    clerk_env env;
    const std::string d_id = add_machine(env.knobs, "d", {env.a().id});
    proxy_process proxy(env.dir, clerk_config(env.up.url(), env.emu.url()));
    CHECK(proxy.proc().wait_for_line(std::regex("auth.audience is not set"), 5s));
    http_client c(proxy.port());
    const std::string for_a =
        env.knobs.mint(d_id, {{"token_format", "jwt"}})["token"].get<std::string>();
    CHECK(c.get("/api/x", bearer(for_a)).status == 200);  // unscoped: accepted, and cached
    CHECK(c.get("/api/x", bearer(for_a)).status == 200);
    CHECK(metric(proxy.admin_port(), "clerk_proxy_cache_lookups_total{result=\"hit\"}") >= 1);

    env.dir.write("proxy.yaml",
                  clerk_config(env.up.url(), env.emu.url(), {}, audience_yaml({env.b().id})));
    const auto from = proxy.proc().line_count();
    proxy.proc().signal(SIGHUP);
    REQUIRE(proxy.proc().wait_for_line(std::regex("configuration reloaded"), 10s, from));
    const auto r = c.get("/api/x", bearer(for_a));  // same connection, new snapshot
    CHECK(r.status == 401);
    CHECK(r.body == problem(r, "invalid_token", "audience_mismatch"));
    CHECK(env.up.requests().size() == 2);
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
