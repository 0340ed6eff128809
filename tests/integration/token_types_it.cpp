// API keys, OAuth access tokens (opaque and JWT) and session tokens (issue #16) through the real
// binaries: the proxy, the Clerk emulator (its /api_keys/verify and
// /oauth_applications/access_tokens/verify, its JWKS, keys and tokens made with its knobs) and
// the recording upstream.
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <regex>
#include <thread>

using namespace clerk::it;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

struct types_env {
    explicit types_env(const std::string& auth_yaml =
                           "auth:\n  accepts_token: [m2m_token, api_key, oauth_token]\n",
                       const std::string& extra = {})
        : emu({"caller"}), knobs(emu.port()) {
        proxy = std::make_unique<proxy_process>(
            dir,
            "listen: \"127.0.0.1:0\"\n"
            "upstream:\n  url: \"" +
                up.url() +
                "\"\n"
                "clerk:\n  api_url: \"" +
                emu.url() + "\"\n  secret_key: \"" + instance_key + "\"\n  retries: 0\n" +
                auth_yaml +
                "admin:\n  listen: \"127.0.0.1:0\"\n"
                "log:\n  level: info\n  format: json\n  access_log: true\n"
                "threads: 2\n" +
                extra);
    }
    json knob(const std::string& path, const json& body) {
        auto r = knobs.request("POST", path, {{"Content-Type", "application/json"}}, body.dump());
        INFO(path << " -> " << r.status << " " << r.body);
        REQUIRE(r.status / 100 == 2);
        return json::parse(r.body);
    }
    std::string api_key(const std::string& subject, json extra = json::object()) {
        extra["subject"] = subject;
        return knob("/__emulator/api_keys", extra)["secret"].get<std::string>();
    }
    std::string oauth_token(const std::string& subject, json extra = json::object()) {
        extra["subject"] = subject;
        return knob("/__emulator/oauth_tokens", extra)["token"].get<std::string>();
    }
    std::string oauth_jwt(const std::string& subject, json extra = json::object()) {
        extra["subject"] = subject;
        extra["format"] = "jwt";
        return knob("/__emulator/oauth_tokens", extra)["token"].get<std::string>();
    }
    std::string session_token(const std::string& user_id, json extra = json::object()) {
        extra["user_id"] = user_id;
        return knob("/__emulator/session_tokens", extra)["token"].get<std::string>();
    }
    long stat(const char* name) {
        auto r = knobs.get("/__emulator/stats");
        REQUIRE(r.status == 200);
        return json::parse(r.body)[name].get<long>();
    }
    double metric(const std::string& series) {
        return scrape_metric(proxy->admin_port(), series).value_or(-1);
    }
    long verify_calls() {
        auto r = knobs.get("/__emulator/stats");
        REQUIRE(r.status == 200);
        return json::parse(r.body)["verify_calls"].get<long>();
    }
    http_response get(const std::string& token, const http_client::header_list& extra = {}) {
        http_client c(proxy->port());
        auto h = bearer(token);
        h.insert(h.end(), extra.begin(), extra.end());
        return c.get("/api/x", h);
    }

    temp_dir dir;
    emulator_process emu;
    http_client knobs;
    recording_upstream up;
    std::unique_ptr<proxy_process> proxy;
};

/// prefix + rest, built by appending (GCC 12 -O3 misfires -Warray-bounds on "lit" + string&&).
std::string prefixed(std::string_view prefix, std::string_view rest) {
    std::string out(prefix);
    out += rest;
    return out;
}

const std::string user = "user_2xhFjEI5X2qWRvtV13BzSj8H6Dk";
const std::string org = "org_2xhFjEI5X2qWRvtV13BzSj8H6Dk";

}  // namespace

TEST_CASE("token types: API keys of users and organizations", "[it][token_types]") {
    types_env env;

    SECTION("a user's key: 200, the user's identity, spoofed copies removed, cached") {
        const std::string key = env.api_key(user, {{"scopes", {"read", "write"}}});
        for (int i = 0; i < 20; ++i) {
            const auto r = env.get(
                key, {{"X-Clerk-User-Id", "user_spoofed"}, {"X-Clerk-Org-Id", "org_spoofed"}});
            REQUIRE(r.status == 200);
        }
        CHECK(env.verify_calls() == 1);
        const auto seen = env.up.requests().back();
        CHECK(seen.header("X-Clerk-Subject") == user);
        CHECK(seen.header("X-Clerk-User-Id") == user);
        CHECK(seen.count("X-Clerk-User-Id") == 1);
        CHECK(seen.count("X-Clerk-Org-Id") == 0);
        CHECK(seen.count("X-Clerk-Machine-Id") == 0);
        CHECK(seen.header("X-Clerk-Token-Type") == "api_key");
        CHECK(seen.header("X-Clerk-Scopes") == "read,write");
        CHECK(seen.header("X-Clerk-Token-Id").rfind("ak_", 0) == 0);
        CHECK(env.proxy->proc().output().find(key) == std::string::npos);
    }
    SECTION("an organization's key: X-Clerk-Org-Id") {
        const auto r = env.get(env.api_key(org));
        REQUIRE(r.status == 200);
        const auto seen = env.up.requests().back();
        CHECK(seen.header("X-Clerk-Org-Id") == org);
        CHECK(seen.count("X-Clerk-User-Id") == 0);
    }
    SECTION("unknown, revoked and expired keys are 401 with their reason") {
        const auto unknown = env.get(prefixed("ak_", std::string(32, 'f')));
        CHECK(unknown.status == 401);
        CHECK(unknown.body.find("\"reason\":\"not_found\"") != std::string::npos);

        const std::string revoked = env.api_key(user);
        env.knob("/__emulator/api_keys/revoke", {{"secret", revoked}});
        const auto r = env.get(revoked);
        CHECK(r.status == 401);
        CHECK(r.body.find("\"reason\":\"revoked\"") != std::string::npos);

        const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        const auto expired = env.get(env.api_key(user, {{"expiration_ms", now_ms - 1000}}));
        CHECK(expired.status == 401);
        CHECK(expired.body.find("\"reason\":\"expired\"") != std::string::npos);
        CHECK(env.up.requests().empty());
    }
    SECTION("concurrent first requests with one key make one Clerk call") {
        const std::string key = env.api_key(user);
        std::atomic<int> ok{0};
        std::vector<std::thread> threads;
        for (int i = 0; i < 20; ++i) {
            threads.emplace_back([&] { ok += env.get(key).status == 200 ? 1 : 0; });
        }
        for (auto& t : threads) {
            t.join();
        }
        CHECK(ok == 20);
        CHECK(env.verify_calls() == 1);
    }
}

TEST_CASE("token types: opaque OAuth access tokens", "[it][token_types]") {
    SECTION("valid: the user; inactive: 401 inactive") {
        types_env env;
        const std::string token = env.oauth_token(user, {{"scopes", {"profile"}}});
        const auto r = env.get(token);
        REQUIRE(r.status == 200);
        const auto seen = env.up.requests().back();
        CHECK(seen.header("X-Clerk-User-Id") == user);
        CHECK(seen.header("X-Clerk-Token-Type") == "oauth_token");
        CHECK(seen.header("X-Clerk-Scopes") == "profile");

        const std::string gone = env.oauth_token(user);
        env.knob("/__emulator/oauth_tokens/deactivate", {{"token", gone}});
        const auto inactive = env.get(gone);
        CHECK(inactive.status == 401);
        CHECK(inactive.body.find("\"reason\":\"inactive\"") != std::string::npos);
    }
    SECTION("auth.audience applies to an OAuth token's aud") {
        types_env env(
            "auth:\n  accepts_token: [m2m_token, api_key, oauth_token]\n  audience: [svc_me]\n");
        CHECK(env.get(env.oauth_token(user, {{"aud", {"svc_me", "svc_b"}}})).status == 200);
        const auto other = env.get(env.oauth_token(user, {{"aud", "svc_other"}}));
        CHECK(other.status == 401);
        CHECK(other.body.find("\"reason\":\"audience_mismatch\"") != std::string::npos);
    }
}

TEST_CASE("token types: a type not accepted is refused without a Clerk call", "[it][token_types]") {
    types_env env("auth:\n  accepts_token: [m2m_token]\n");
    const auto r = env.get(env.api_key(user));
    CHECK(r.status == 401);
    CHECK(r.body.find("\"reason\":\"token_type_not_accepted\"") != std::string::npos);
    CHECK(env.get(prefixed("oat_", std::string(32, 'a'))).status == 401);
    CHECK(env.verify_calls() == 0);
    CHECK(env.up.requests().empty());
}

TEST_CASE("token types: cache.max_miss_rate bounds Clerk calls under a flood of unknown tokens",
          "[it][token_types]") {
    types_env env("auth:\n  accepts_token: [m2m_token, api_key, oauth_token]\n",
                  "cache:\n  max_miss_rate: 10\n");
    const auto t0 = std::chrono::steady_clock::now();
    int limited = 0;
    int refused = 0;
    http_client c(env.proxy->port());
    for (int i = 0; i < 300; ++i) {
        const auto r = c.get(
            "/api/x", bearer(prefixed("oat_", std::to_string(100000 + i) + std::string(26, 'r'))));
        if (r.status == 503) {
            CHECK(r.body.find("\"reason\":\"miss_rate_limited\"") != std::string::npos);
            CHECK(r.header("Retry-After") == "1");
            ++limited;
        } else {
            CHECK(r.status == 401);  // a verified refusal, never a 401 for a limited one
            ++refused;
        }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const long calls = env.verify_calls();
    INFO(calls << " calls in " << seconds << " s; " << limited << " limited");
    // One second's worth up front, then 10 per second.
    CHECK(calls <= static_cast<long>(10 + seconds * 10 + 1));
    CHECK(calls == refused);
    CHECK(limited > 0);
}

TEST_CASE("token types: session tokens, verified locally against the JWKS", "[it][token_types]") {
    const std::string sessions =
        "auth:\n  accepts_token: [session_token]\n"
        "  authorized_parties: [\"https://app.example.com\"]\n";

    SECTION("valid: 200, user and active organization, spoofed copies removed, no verify call") {
        types_env env(sessions);
        const std::string token =
            env.session_token(user, {{"azp", "https://app.example.com"},
                                     {"org", {{"id", org}, {"slug", "acme"}, {"role", "admin"}}}});
        REQUIRE(env.get(token).status == 200);
        const long jwks_fetches = env.stat("jwks_calls");
        CHECK(jwks_fetches >= 1);
        for (int i = 0; i < 19; ++i) {
            const auto r = env.get(token, {{"X-Clerk-User-Id", "user_spoofed"},
                                           {"X-Clerk-Org-Id", "org_spoofed"},
                                           {"X-Clerk-Machine-Id", "mch_spoofed"}});
            REQUIRE(r.status == 200);
        }
        const auto seen = env.up.requests().back();
        CHECK(seen.header("X-Clerk-Subject") == user);
        CHECK(seen.header("X-Clerk-User-Id") == user);
        CHECK(seen.count("X-Clerk-User-Id") == 1);
        CHECK(seen.header("X-Clerk-Org-Id") == org);
        CHECK(seen.count("X-Clerk-Org-Id") == 1);
        CHECK(seen.count("X-Clerk-Machine-Id") == 0);
        CHECK(seen.header("X-Clerk-Token-Type") == "session_token");
        CHECK(seen.header("X-Clerk-Token-Id").rfind("sess_", 0) == 0);
        CHECK(seen.header("X-Clerk-Claims").find("\"rol\":\"admin\"") != std::string::npos);
        CHECK(env.verify_calls() == 0);
        CHECK(env.stat("jwks_calls") == jwks_fetches);  // no key fetch per request
        CHECK(env.metric("clerk_proxy_auth_decisions_by_type_total{token_type=\"session_token\","
                         "result=\"allow\"}") == 20);
        CHECK(env.metric("clerk_proxy_cache_lookups_total{result=\"hit\"}") == 19);
        CHECK(env.proxy->proc().output().find(token) == std::string::npos);
    }
    SECTION("claims version 1: org_id") {
        types_env env(sessions);
        const auto r = env.get(env.session_token(
            user, {{"azp", "https://app.example.com"}, {"version", 1}, {"org", {{"id", org}}}}));
        REQUIRE(r.status == 200);
        CHECK(env.up.requests().back().header("X-Clerk-Org-Id") == org);
    }
    SECTION("azp outside auth.authorized_parties, or absent: 401 authorized_party_mismatch") {
        types_env env(sessions);
        for (const json& extra : {json{{"azp", "https://evil.example.com"}}, json::object()}) {
            const auto r = env.get(env.session_token(user, extra));
            CHECK(r.status == 401);
            CHECK(r.body.find("\"reason\":\"authorized_party_mismatch\"") != std::string::npos);
        }
        CHECK(env.up.requests().empty());
    }
    SECTION("expired, pending, forged and M2M-category tokens are refused with their reason") {
        types_env env("auth:\n  accepts_token: [session_token]\n");
        const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        const auto expired = env.get(env.session_token(user, {{"expiration_ms", now_ms - 60000}}));
        CHECK(expired.status == 401);
        CHECK(expired.body.find("\"reason\":\"expired\"") != std::string::npos);
        const auto pending = env.get(env.session_token(user, {{"status", "pending"}}));
        CHECK(pending.status == 401);
        CHECK(pending.body.find("\"reason\":\"session_pending\"") != std::string::npos);
        // The payload of a genuine token swapped for another user's: the signature fails.
        const std::string a = env.session_token(user);
        const std::string b = env.session_token("user_someone_else");
        const std::string forged = a.substr(0, a.find('.') + 1) +
                                   b.substr(b.find('.') + 1, b.rfind('.') - b.find('.') - 1) +
                                   a.substr(a.rfind('.'));
        const auto bad = env.get(forged);
        CHECK(bad.status == 401);
        CHECK(bad.body.find("\"reason\":\"bad_signature\"") != std::string::npos);
        CHECK(env.up.requests().empty());
        CHECK(env.verify_calls() == 0);
    }
    SECTION("not accepted: 401 token_type_not_accepted, no JWT work, no call") {
        types_env env("auth:\n  accepts_token: [m2m_token, api_key]\n");
        const auto r = env.get(env.session_token(user));
        CHECK(r.status == 401);
        CHECK(r.body.find("\"reason\":\"token_type_not_accepted\"") != std::string::npos);
        CHECK(env.metric("clerk_proxy_auth_decisions_by_type_total{token_type=\"session_token\","
                         "result=\"invalid_token\"}") == 1);
        CHECK(env.verify_calls() == 0);
    }
}

TEST_CASE("token types: OAuth access tokens in JWT format", "[it][token_types]") {
    types_env env("auth:\n  accepts_token: [oauth_token]\n  audience: [svc_me]\n");
    SECTION("valid: 200 with the user and scp scopes; no verify call") {
        const std::string token =
            env.oauth_jwt(user, {{"scopes", {"read", "write"}}, {"aud", {"svc_me"}}});
        for (int i = 0; i < 5; ++i) {
            REQUIRE(env.get(token, {{"X-Clerk-User-Id", "user_spoofed"}}).status == 200);
        }
        const auto seen = env.up.requests().back();
        CHECK(seen.header("X-Clerk-User-Id") == user);
        CHECK(seen.count("X-Clerk-User-Id") == 1);
        CHECK(seen.header("X-Clerk-Token-Type") == "oauth_token");
        CHECK(seen.header("X-Clerk-Scopes") == "read,write");
        CHECK(seen.header("X-Clerk-Token-Id").rfind("oat_", 0) == 0);
        CHECK(env.verify_calls() == 0);
    }
    SECTION("aud not naming this service, or none: 401 audience_mismatch") {
        for (const json& extra : {json{{"aud", "svc_other"}}, json::object()}) {
            const auto r = env.get(env.oauth_jwt(user, extra));
            CHECK(r.status == 401);
            CHECK(r.body.find("\"reason\":\"audience_mismatch\"") != std::string::npos);
        }
        CHECK(env.up.requests().empty());
    }
    SECTION("scp as a space-separated string") {
        const auto r = env.get(env.oauth_jwt(user, {{"scopes", "a b"}, {"aud", "svc_me"}}));
        REQUIRE(r.status == 200);
        CHECK(env.up.requests().back().header("X-Clerk-Scopes") == "a,b");
    }
}

TEST_CASE("token types: Clerk verification calls are counted by token type", "[it][token_types]") {
    types_env env;
    REQUIRE(env.get(env.api_key(user)).status == 200);
    REQUIRE(env.get(env.oauth_token(user)).status == 200);
    REQUIRE(env.get(env.oauth_token(user)).status == 200);
    CHECK(env.metric(
              "clerk_proxy_clerk_verifications_total{token_type=\"api_key\",status=\"200\"}") == 1);
    CHECK(env.metric(
              "clerk_proxy_clerk_verifications_total{token_type=\"oauth_token\",status=\"200\"}") ==
          2);
    CHECK(env.metric("clerk_proxy_auth_decisions_by_type_total{token_type=\"oauth_token\","
                     "result=\"allow\"}") == 2);
    // Access lines are flushed by the event loop at least every 100 ms.
    CHECK(env.proxy->proc().wait_for_line(std::regex("\"token_type\":\"api_key\""), 5s));
    CHECK(env.proxy->proc().wait_for_line(std::regex("\"token_type\":\"oauth_token\""), 5s));
}
