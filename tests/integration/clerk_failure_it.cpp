// Clerk failing or untrusted: 503 and recovery, a wrong key, stale_if_error, HTTPS checks.
#include "clerk_fixtures.hpp"
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

using namespace clerk::it;
using namespace clerk::it::clerk_fixtures;
using json = nlohmann::json;

namespace {

/// Timeouts short enough for failure tests, with the default 2 retries.
const std::string fast_clerk = "  timeout: 300ms\n  retries: 2\n";

}  // namespace

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
