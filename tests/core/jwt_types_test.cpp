// verify_jwt for OAuth JWT access tokens and session tokens (docs/clerk-protocol.md §4.4, §4.5),
// and the recipient checks that apply to them (auth.audience, auth.authorized_parties).
#include "core/jwt.hpp"

#include "fakes/jwt_minter.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clerk::core::jwt_key_set;
using clerk::core::sys_time;
using clerk::core::token_format;
using clerk::core::token_type;
using clerk::core::verify_jwt;
namespace reason = clerk::core::jwt_reason;
using clerk::testing::jwt_minter;
using nlohmann::json;
using strings = std::vector<std::string>;

constexpr long long now_s = 1753743316;
constexpr sys_time now{std::chrono::seconds(now_s)};
constexpr auto skew = 5000ms;
constexpr std::string_view kid = "ins_types";

const jwt_key_set& keys() {
    static const auto set = [] {
        std::string error;
        auto s = jwt_key_set::from_jwks_json(
            json{{"keys", {jwt_minter::shared(0).jwk(kid, "RS256")}}}.dump(), error);
        REQUIRE(s);
        return s;
    }();
    return *set;
}

std::string mint(const json& header, const json& payload) {
    return jwt_minter::shared(0).mint(header, payload);
}

json with(json j, const char* name, json value) {
    j[name] = std::move(value);
    return j;
}

json without(json j, const char* name) {
    j.erase(name);
    return j;
}

// --- OAuth access tokens in JWT format.

json oauth_header() {
    return {{"alg", "RS256"}, {"typ", "at+jwt"}, {"kid", std::string(kid)}};
}

json oauth_claims() {
    return {{"iss", "https://clerk.example.com"},
            {"sub", "user_2abc"},
            {"client_id", "client_1"},
            {"scp", {"read", "write"}},
            {"aud", "mch_us"},
            {"jti", "oat_1"},
            {"iat", now_s - 10},
            {"nbf", now_s - 10},
            {"exp", now_s + 3600}};
}

auto oauth(const json& header, const json& payload) {
    return verify_jwt(mint(header, payload), token_type::oauth_token, keys(), now, skew);
}

// --- Session tokens.

json session_header() {
    return {
        {"alg", "RS256"}, {"typ", "JWT"}, {"kid", std::string(kid)}, {"cat", "cl_B7d4PD111AAA"}};
}

json session_claims() {  // claims version 2, as Clerk mints them
    return {{"azp", "https://app.example.com"},
            {"exp", now_s + 60},
            {"fva", {0, -1}},
            {"iat", now_s - 1},
            {"iss", "https://clerk.example.com"},
            {"nbf", now_s - 11},
            {"sid", "sess_1"},
            {"sts", "active"},
            {"sub", "user_2abc"},
            {"v", 2},
            {"o", {{"id", "org_9"}, {"rol", "admin"}, {"slg", "acme"}}}};
}

auto session(const json& header, const json& payload) {
    return verify_jwt(mint(header, payload), token_type::session_token, keys(), now, skew);
}

}  // namespace

TEST_CASE("verify_jwt (OAuth): mapping of the SDK's IdPOAuthAccessToken", "[jwt][oauth]") {
    const auto r = oauth(oauth_header(), oauth_claims());
    REQUIRE(r.ok);
    const auto& id = *r.id;
    CHECK(id.type == token_type::oauth_token);
    CHECK(id.format == token_format::jwt);
    CHECK(id.who->subject == "user_2abc");
    CHECK(id.token_id == "oat_1");
    CHECK(id.who->scopes == strings{"read", "write"});
    CHECK(*id.who->audience == strings{"mch_us"});
    CHECK_FALSE(id.who->authorized_party);
    CHECK(id.who->claims_compact == R"({"client_id":"client_1"})");
    CHECK(*id.expires_at_ms == (now_s + 3600) * 1000);

    SECTION("typ application/at+jwt is the same") {
        CHECK(oauth(with(oauth_header(), "typ", "application/at+jwt"), oauth_claims()).ok);
    }
    SECTION("scopes: scp as a string, else scope split on spaces, else []") {
        CHECK(oauth(oauth_header(), with(oauth_claims(), "scp", "a b")).id->who->scopes ==
              strings{"a", "b"});
        CHECK(oauth(oauth_header(), with(without(oauth_claims(), "scp"), "scope", " x  y"))
                  .id->who->scopes == strings{"x", "y"});
        CHECK(oauth(oauth_header(), without(oauth_claims(), "scp")).id->who->scopes.empty());
        CHECK(oauth(oauth_header(), with(oauth_claims(), "scp", 3)).reason == reason::malformed);
        CHECK(oauth(oauth_header(), with(oauth_claims(), "scp", {"a", 1})).reason ==
              reason::malformed);
    }
    SECTION("recipient scoping reads aud like an M2M JWT's") {
        using clerk::core::audience_allows;
        CHECK(audience_allows(id, {"mch_us"}));
        CHECK_FALSE(audience_allows(id, {"mch_other"}));
        const auto no_aud = oauth(oauth_header(), without(oauth_claims(), "aud"));
        REQUIRE(no_aud.ok);
        CHECK_FALSE(audience_allows(*no_aud.id, {"mch_us"}));
        CHECK(oauth(oauth_header(), with(oauth_claims(), "aud", 5)).reason == reason::malformed);
    }
}

TEST_CASE("verify_jwt (OAuth): header and claim refusals", "[jwt][oauth]") {
    CHECK(oauth(with(oauth_header(), "typ", "JWT"), oauth_claims()).reason == reason::invalid_typ);
    CHECK(oauth(without(oauth_header(), "typ"), oauth_claims()).reason == reason::invalid_typ);
    CHECK(oauth(with(oauth_header(), "typ", "AT+JWT"), oauth_claims()).reason ==
          reason::invalid_typ);
    for (const char* cat : {"cl_B7d4PD333AAA", "cl_B7d4PD111AAA"}) {
        CHECK(oauth(with(oauth_header(), "cat", cat), oauth_claims()).reason ==
              reason::invalid_category);
    }
    CHECK(oauth(with(oauth_header(), "alg", "HS256"), oauth_claims()).reason ==
          reason::alg_not_allowed);
    CHECK(oauth(oauth_header(), without(oauth_claims(), "sub")).reason == reason::invalid_subject);
    CHECK(oauth(oauth_header(), with(oauth_claims(), "sub", "")).reason == reason::invalid_subject);
    CHECK(oauth(oauth_header(), without(oauth_claims(), "exp")).reason == reason::missing_exp);
    CHECK(oauth(oauth_header(), with(oauth_claims(), "exp", now_s - 10)).reason == reason::expired);
    CHECK(verify_jwt(jwt_minter::shared(1).mint(oauth_header(), oauth_claims()),
                     token_type::oauth_token, keys(), now, skew)
              .reason == reason::bad_signature);
    // An M2M JWT is not an OAuth token, and an OAuth JWT is not an M2M token.
    CHECK(verify_jwt(mint(with(oauth_header(), "typ", "JWT"), with(oauth_claims(), "sub", "mch_1")),
                     token_type::oauth_token, keys(), now, skew)
              .reason == reason::invalid_typ);
    CHECK(verify_jwt(mint(oauth_header(), with(oauth_claims(), "sub", "mch_1")),
                     token_type::m2m_token, keys(), now, skew)
              .reason == reason::invalid_typ);
    // API keys have no JWT form.
    CHECK(verify_jwt(mint(oauth_header(), oauth_claims()), token_type::api_key, keys(), now, skew)
              .reason == reason::malformed);
}

TEST_CASE("verify_jwt (session): claims version 2", "[jwt][session]") {
    const auto r = session(session_header(), session_claims());
    REQUIRE(r.ok);
    const auto& id = *r.id;
    CHECK(id.type == token_type::session_token);
    CHECK(id.format == token_format::jwt);
    CHECK(id.who->subject == "user_2abc");
    CHECK(id.token_id == "sess_1");
    CHECK(id.who->org_id == "org_9");
    CHECK(id.who->scopes.empty());
    CHECK_FALSE(id.who->audience);  // sessions are not scoped by auth.audience
    REQUIRE(id.who->authorized_party);
    CHECK(*id.who->authorized_party == "https://app.example.com");
    // Session bookkeeping dropped; the organization's role and slug stay for the upstream.
    CHECK(id.who->claims_compact == R"({"o":{"id":"org_9","rol":"admin","slg":"acme"}})");
    CHECK(*id.expires_at_ms == (now_s + 60) * 1000);
    CHECK(clerk::core::audience_allows(id, {"mch_us"}));

    SECTION("no organization, no azp") {
        const auto plain =
            session(session_header(), without(without(session_claims(), "o"), "azp"));
        REQUIRE(plain.ok);
        CHECK(plain.id->who->org_id.empty());
        CHECK(*plain.id->who->authorized_party == "");
        CHECK(plain.id->who->claims.is_null());
    }
    SECTION("cat absent and typ absent are accepted") {
        CHECK(session(without(without(session_header(), "cat"), "typ"), session_claims()).ok);
    }
    SECTION("custom session claims are kept") {
        const auto c = session(session_header(), with(session_claims(), "role", "ops"));
        REQUIRE(c.ok);
        CHECK(c.id->who->claims["role"] == "ops");
    }
}

TEST_CASE("verify_jwt (session): claims version 1 organization", "[jwt][session]") {
    json v1 = without(without(session_claims(), "v"), "o");
    v1["org_id"] = "org_7";
    v1["org_role"] = "org:member";
    v1["org_slug"] = "acme";
    const auto r = session(session_header(), v1);
    REQUIRE(r.ok);
    CHECK(r.id->who->org_id == "org_7");
    CHECK(r.id->who->claims["org_role"] == "org:member");
    // Version 2 reads only `o`; a stray org_id is not the active organization.
    const auto v2 =
        session(session_header(), with(without(session_claims(), "o"), "org_id", "org_x"));
    REQUIRE(v2.ok);
    CHECK(v2.id->who->org_id.empty());
}

TEST_CASE("verify_jwt (session): refusals", "[jwt][session]") {
    CHECK(session(with(session_header(), "cat", "cl_B7d4PD333AAA"), session_claims()).reason ==
          reason::invalid_category);
    CHECK(session(with(session_header(), "cat", "cl_other"), session_claims()).reason ==
          reason::invalid_category);
    CHECK(session(with(session_header(), "typ", "at+jwt"), session_claims()).reason ==
          reason::invalid_typ);
    CHECK(session(session_header(), with(session_claims(), "sts", "pending")).reason ==
          reason::session_pending);
    CHECK(session(session_header(), without(session_claims(), "sub")).reason ==
          reason::invalid_subject);
    CHECK(session(session_header(), with(session_claims(), "azp", 1)).reason == reason::malformed);
    CHECK(session(session_header(), with(session_claims(), "sid", json::array())).reason ==
          reason::malformed);
    CHECK(session(session_header(), with(session_claims(), "o", "org_9")).reason ==
          reason::malformed);
    CHECK(session(session_header(), with(session_claims(), "exp", now_s - 6)).reason ==
          reason::expired);
    CHECK(session(session_header(), with(session_claims(), "nbf", now_s + 6)).reason ==
          reason::not_yet_valid);
    CHECK(verify_jwt(jwt_minter::shared(1).mint(session_header(), session_claims()),
                     token_type::session_token, keys(), now, skew)
              .reason == reason::bad_signature);
}

TEST_CASE("authorized_party_allows (auth.authorized_parties)", "[jwt][session]") {
    using clerk::core::authorized_party_allows;
    const auto r = session(session_header(), session_claims());
    REQUIRE(r.ok);
    CHECK(authorized_party_allows(*r.id, {}));
    CHECK(authorized_party_allows(*r.id, {"https://x.example", "https://app.example.com"}));
    CHECK_FALSE(authorized_party_allows(*r.id, {"https://app.example.co"}));
    CHECK_FALSE(authorized_party_allows(*r.id, {"https://app.example.com/"}));  // exact
    const auto no_azp = session(session_header(), without(session_claims(), "azp"));
    REQUIRE(no_azp.ok);
    CHECK(authorized_party_allows(*no_azp.id, {}));
    CHECK_FALSE(authorized_party_allows(*no_azp.id, {"https://app.example.com"}));
    // Other token types carry no azp to check.
    const auto access = oauth(oauth_header(), oauth_claims());
    CHECK(authorized_party_allows(*access.id, {"https://app.example.com"}));
}
