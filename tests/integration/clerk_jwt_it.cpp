// M2M JWTs: local verification against the JWKS, auth.audience, and reloads that narrow it.
#include "clerk_fixtures.hpp"
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include "fakes/jwt_minter.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <regex>
#include <string>
#include <vector>

using namespace clerk::it;
using namespace clerk::it::clerk_fixtures;
using json = nlohmann::json;

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
