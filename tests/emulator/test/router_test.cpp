// Socket-free tests of the emulator's API: router + state + JWT signer, driven with plain
// api_request values and an injected clock (CONTRIBUTING.md §10).
#include "tests/emulator/router.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace emu = clerk::emulator;
using nlohmann::json;

namespace {

constexpr std::int64_t t0 = 1'750'000'000'000;  // ms
constexpr std::string_view sk = "sk_test_emulator";

struct fixture {
    emu::emulator_state state{std::string(sk)};
    emu::jwt_signer signer;
    emu::router api{state, signer};
    std::string a_id, a_key, b_id, b_key;

    fixture() {
        a_id = state.create_machine("a", {}, t0).id;
        b_id = state.create_machine("b", {}, t0).id;
        state.add_scope(a_id, b_id, t0);
        state.add_scope(b_id, a_id, t0);
        a_key = state.find_machine(a_id)->secret_key;
        b_key = state.find_machine(b_id)->secret_key;
    }

    emu::api_response call(std::string method, std::string target, std::string_view key,
                           std::string body = {}, std::int64_t now = t0) {
        emu::api_request req{std::move(method), std::move(target), "Bearer " + std::string(key),
                             "2026-05-12", std::move(body)};
        return api.handle(req, now);
    }

    json create(std::string_view key, const json& body, std::int64_t now = t0) {
        auto res = call("POST", "/m2m_tokens", key, body.dump(), now);
        REQUIRE(res.status == 201);
        return json::parse(res.body);
    }
};

std::string code_of(const emu::api_response& res) {
    return json::parse(res.body)["errors"][0]["code"].get<std::string>();
}

}  // namespace

TEST_CASE("create then verify an opaque token, scoping and errors", "[emulator]") {
    fixture f;
    const json t = f.create(f.a_key, {{"seconds_until_expiration", 60}, {"claims", {{"k", 1}}}});
    CHECK(t["object"] == "machine_to_machine_token");
    CHECK(t["subject"] == f.a_id);
    CHECK(t["scopes"] == json::array({f.b_id}));
    CHECK(t["expiration"] == t0 + 60'000);
    CHECK(t["token"] != t["id"]);

    const json verify_body = {{"token", t["token"]}};
    auto ok = f.call("POST", "/m2m_tokens/verify", f.b_key, verify_body.dump());
    CHECK(ok.status == 200);
    CHECK(ok.content_type == "application/json");
    CHECK_FALSE(json::parse(ok.body).contains("token"));
    CHECK(f.call("POST", "/v1/m2m_tokens/verify", sk, verify_body.dump()).status == 200);
    // The issuer is not in its own token's scopes.
    CHECK(code_of(f.call("POST", "/m2m_tokens/verify", f.a_key, verify_body.dump())) ==
          "resource_not_found");
    CHECK(f.call("POST", "/m2m_tokens/verify", "ak_nope", verify_body.dump()).status == 401);
    CHECK(f.call("POST", "/m2m_tokens/verify", f.b_key, "{").status == 400);
    CHECK(f.call("POST", "/m2m_tokens/verify", f.b_key, R"({"token":"x","y":1})").status == 400);
    CHECK(f.call("POST", "/m2m_tokens", sk, "{}").status == 401);
    CHECK(f.call("POST", "/m2m_tokens", f.a_key, R"({"bogus":1})").status == 400);

    // Expired after 60 s: 404 token_expired by default, 200 expired:true with the knob.
    auto late = f.call("POST", "/m2m_tokens/verify", f.b_key, verify_body.dump(), t0 + 60'000);
    CHECK(code_of(late) == "token_expired");
    f.state.revoked_status = 200;
    late = f.call("POST", "/m2m_tokens/verify", f.b_key, verify_body.dump(), t0 + 60'000);
    CHECK(late.status == 200);
    CHECK(json::parse(late.body)["expired"] == true);
}

TEST_CASE("missing Clerk-API-Version is a 400", "[emulator]") {
    fixture f;
    emu::api_request req{"POST", "/m2m_tokens/verify", "Bearer " + f.b_key, std::nullopt,
                         R"({"token":"mt_x"})"};
    CHECK(f.api.handle(req, t0).status == 400);
}

TEST_CASE("revoke, list and JWT tokens", "[emulator]") {
    fixture f;
    const json t = f.create(f.a_key, json::object());
    const std::string revoke = "/m2m_tokens/" + t["id"].get<std::string>() + "/revoke";
    CHECK(f.call("POST", revoke, f.b_key, R"({"revocation_reason":null})").status == 404);
    auto r = f.call("POST", revoke, f.a_key, R"({"revocation_reason":"gone"})");
    CHECK(r.status == 200);
    CHECK(json::parse(r.body)["revocation_reason"] == "gone");
    const json vb = {{"token", t["token"]}};
    CHECK(code_of(f.call("POST", "/m2m_tokens/verify", sk, vb.dump())) == "token_revoked");

    const std::string list = "/m2m_tokens?subject=" + f.a_id;
    CHECK(json::parse(f.call("GET", list, f.a_key).body)["total_count"] == 0);
    CHECK(json::parse(f.call("GET", list + "&revoked=true", sk).body)["total_count"] == 1);
    CHECK(f.call("GET", list, f.b_key).status == 403);
    CHECK(f.call("GET", "/m2m_tokens?subject=" + f.a_id + "&limit=0", sk).status == 400);

    const json j = f.create(f.a_key, {{"token_format", "jwt"}, {"claims", {{"c", "v"}}}});
    const auto v = f.signer.verify(j["token"].get<std::string>());
    REQUIRE(v);
    CHECK(v->header["cat"] == "cl_B7d4PD333AAA");
    CHECK(v->payload["aud"] == json::array({f.b_id}));
    const json jb = {{"token", j["token"]}};
    auto jv = f.call("POST", "/m2m_tokens/verify", f.b_key, jb.dump());
    CHECK(jv.status == 200);
    CHECK(json::parse(jv.body)["claims"] == json({{"c", "v"}}));
    CHECK(f.call("POST", "/m2m_tokens/" + j["id"].get<std::string>() + "/revoke", f.a_key, "{}")
              .status == 400);
    std::string forged = j["token"].get<std::string>();
    char& mid = forged[forged.size() - 20];  // inside the signature, all 6 bits significant
    mid = mid == 'A' ? 'B' : 'A';
    CHECK(f.call("POST", "/m2m_tokens/verify", sk, json({{"token", forged}}).dump()).status == 404);
}

TEST_CASE("JWKS keeps the previous key after a rotation", "[emulator]") {
    fixture f;
    CHECK(f.call("GET", "/v1/jwks", f.a_key).status == 401);
    CHECK(code_of(f.call("GET", "/v1/jwks", f.a_key)) == "clerk_key_invalid");
    CHECK(f.call("POST", "/__emulator/rotate_jwks", "").status == 200);
    const json jwks = json::parse(f.call("GET", "/v1/jwks", sk).body);
    REQUIRE(jwks["keys"].size() == 2);
    CHECK(jwks["keys"][0]["kid"] == f.signer.current_kid());
    CHECK(jwks["keys"][1]["e"] == "AQAB");
}

TEST_CASE("knobs: stats, injected failures, latency", "[emulator]") {
    fixture f;
    const json vb = {{"token", "mt_unknown"}};
    CHECK(f.call("POST", "/__emulator/fail", "", R"({"count":2,"status":429,"retry_after":3})")
              .status == 200);
    auto res = f.call("POST", "/m2m_tokens/verify", f.b_key, vb.dump());
    CHECK(res.status == 429);
    REQUIRE(res.headers.size() == 1);
    CHECK(res.headers[0] == std::pair<std::string, std::string>{"Retry-After", "3"});
    CHECK(f.call("POST", "/m2m_tokens", f.a_key, "{}").status == 201);  // create is never failed
    CHECK(f.call("GET", "/v1/jwks", sk).status == 429);
    CHECK(f.call("GET", "/v1/jwks", sk).status == 200);

    f.call("POST", "/__emulator/fail", "", R"({"mode":"hang","endpoint":"jwks"})");
    CHECK(f.call("POST", "/m2m_tokens/verify", f.b_key, vb.dump()).action == emu::fault::none);
    CHECK(f.call("GET", "/v1/jwks", sk).action == emu::fault::hang);
    f.call("POST", "/__emulator/fail", "", R"({"mode":"reset","endpoint":"verify"})");
    CHECK(f.call("POST", "/m2m_tokens/verify", f.b_key, vb.dump()).action == emu::fault::reset);
    f.call("POST", "/__emulator/fail", "", R"({"mode":"garbage"})");
    res = f.call("POST", "/m2m_tokens/verify", f.b_key, vb.dump());
    CHECK(res.status == 200);
    CHECK(json::parse(res.body, nullptr, false).is_discarded());

    f.call("POST", "/__emulator/latency", "", R"({"ms":30})");
    CHECK(f.call("GET", "/v1/jwks", sk).delay == std::chrono::milliseconds(30));
    CHECK(f.call("GET", "/__emulator/stats", "").delay == std::chrono::milliseconds(0));
    const json stats = json::parse(f.call("GET", "/__emulator/stats", "").body);
    CHECK(stats["verify_calls"] == 4);
    CHECK(stats["jwks_calls"] == 4);
    CHECK(stats["create_calls"] == 1);
    CHECK(stats["total_calls"] == 9);
}

TEST_CASE("malformed input never throws", "[emulator]") {
    fixture f;
    const char* targets[] = {"",
                             "x",
                             "/",
                             "//",
                             "/v1",
                             "/v1/",
                             "/m2m_tokens/",
                             "/m2m_tokens/a/b/c",
                             "/m2m_tokens?%zz=%",
                             "/__emulator/",
                             "/__emulator/machines/x/scopes",
                             "/v1/machines/%00/secret_key",
                             "/m2m_tokens?subject"};
    const char* bodies[] = {"",
                            "{",
                            "null",
                            "[]",
                            "1e999",
                            R"({"token":5})",
                            R"({"ms":-1,"count":"x","name":[],"machine_id":{}})"};
    for (const char* method : {"GET", "POST", "DELETE", "PATCH"}) {
        for (const char* target : targets) {
            for (const char* body : bodies) {
                for (std::string_view key : {std::string_view(sk), std::string_view("ak_x")}) {
                    CHECK_NOTHROW(f.call(method, target, key, body));
                }
            }
        }
    }
}

TEST_CASE("base64url is strict", "[emulator]") {
    CHECK(emu::base64url_decode("QQ") == std::optional<std::string>("A"));
    CHECK_FALSE(emu::base64url_decode("QR"));  // non-zero trailing bits
    CHECK_FALSE(emu::base64url_decode("QQ=="));
    CHECK_FALSE(emu::base64url_decode("Q"));
    CHECK(emu::base64url_encode("\xff\xfe") == "__4");
}
