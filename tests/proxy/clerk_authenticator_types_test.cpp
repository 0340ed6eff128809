// The authenticator per token type: which key and endpoint each uses, and what fails closed.
#include "proxy/auth/clerk_authenticator.hpp"

#include "clerk_authenticator_fixtures.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

using namespace clerk;
using namespace clerk::testing::authenticator_fixtures;

TEST_CASE("the instance key is used without a machine key", "[clerk_authenticator]") {
    fixture f([](config::config& c) {
        c.clerk.machine_secret_key = "";
        c.clerk.secret_key = "sk_test_x";
    });
    f.clerk->script = {reply(200, token_json("mt_1"))};
    CHECK(f.check("mt_secret").decision.allowed());
    CHECK(f.clerk->requests.at(0).bearer == "sk_test_x");
}

TEST_CASE("impossible classes and JWTs without keys fail closed without a call",
          "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(200, token_json("mt_1"))};
    for (auto cls : {core::token_class{core::token_type::session_token, core::token_format::opaque},
                     core::token_class{core::token_type::api_key, core::token_format::jwt}}) {
        auto r = f.check("x.y.z", cls);
        CHECK(r.decision.kind == core::decision_kind::invalid_token);
        CHECK(r.decision.reason == "malformed");
        CHECK_FALSE(r.cache);
    }
    // No clerk.jwt_key and no clerk.secret_key: no JWT of any type can be verified.
    for (auto type : {core::token_type::m2m_token, core::token_type::oauth_token,
                      core::token_type::session_token}) {
        auto jwt = f.check("a.b.c", core::token_class{type, core::token_format::jwt});
        CHECK(jwt.decision.kind == core::decision_kind::invalid_token);
        CHECK(jwt.decision.reason == "jwt_not_supported");
    }
    CHECK(f.clerk->calls == 0);
}

TEST_CASE("API keys and opaque OAuth tokens: their endpoint, body field and the instance key",
          "[clerk_authenticator]") {
    fixture f([](config::config& c) { c.clerk.secret_key = "sk_instance"; });
    SECTION("api_key") {
        f.clerk->script = {reply(200, nlohmann::json{{"object", "api_key"},
                                                     {"id", "ak_id1"},
                                                     {"subject", "user_1"},
                                                     {"scopes", {"read"}},
                                                     {"claims", nullptr},
                                                     {"revoked", false},
                                                     {"expired", false},
                                                     {"expiration", nullptr}}
                                          .dump())};
        const auto r = f.check(
            "ak_secret", core::token_class{core::token_type::api_key, core::token_format::opaque});
        REQUIRE(r.decision.allowed());
        CHECK(r.id->type == core::token_type::api_key);
        CHECK(r.id->who->subject == "user_1");
        REQUIRE(f.clerk->requests.size() == 1);
        CHECK(f.clerk->requests[0].path == "/api_keys/verify");
        CHECK(f.clerk->requests[0].bearer == "sk_instance");  // never the machine key
        CHECK(nlohmann::json::parse(f.clerk->requests[0].body) ==
              nlohmann::json{{"secret", "ak_secret"}});
    }
    SECTION("oauth_token, and {\"active\": false} is a refusal") {
        f.clerk->script = {reply(200, R"({"active": false})")};
        const auto r = f.check(
            "oat_x", core::token_class{core::token_type::oauth_token, core::token_format::opaque});
        CHECK(r.decision.kind == core::decision_kind::invalid_token);
        CHECK(r.decision.reason == "inactive");
        REQUIRE(f.clerk->requests.size() == 1);
        CHECK(f.clerk->requests[0].path == "/oauth_applications/access_tokens/verify");
        CHECK(f.clerk->requests[0].bearer == "sk_instance");
        CHECK(nlohmann::json::parse(f.clerk->requests[0].body) ==
              nlohmann::json{{"access_token", "oat_x"}});
    }
}
