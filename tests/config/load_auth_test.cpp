// The config loader's auth section: auth.audience and session tokens' authorized_parties.
#include "config/load.hpp"
#include "load_fixtures.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

using namespace clerk::testing::load_fixtures;
using clerk::config::load_result;

TEST_CASE("auth.audience: recipient scoping of JWTs", "[config][load][audience]") {
    const auto warns_audience = [](const load_result& r) {
        return std::any_of(r.cfg->warnings.begin(), r.cfg->warnings.end(), [](const auto& w) {
            return w.find("auth.audience is not set") != std::string::npos &&
                   w.find("CLERK_MACHINE_ID") != std::string::npos;
        });
    };
    SECTION("a list, a single string, an env variable; duplicates folded") {
        const auto env = fake_env({{"SK", "sk_test_x"}, {"CLERK_MACHINE_ID", "mch_us"}});
        const auto r = load(with_base("  secret_key: sk_test_x\nauth:\n  audience: "
                                      "[\"${CLERK_MACHINE_ID}\", mch_b, mch_b]\n"),
                            env);
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(r.cfg->auth.audience == std::vector<std::string>{"mch_us", "mch_b"});
        CHECK_FALSE(warns_audience(r));
        const auto one = load(with_base("auth:\n  audience: mch_us\n"));
        REQUIRE(one.ok());
        CHECK(one.cfg->auth.audience == std::vector<std::string>{"mch_us"});
    }
    SECTION("unset while M2M JWTs can be verified: a warning naming the fix") {
        const auto r = load(with_base("  secret_key: sk_test_x\n"));  // JWKS can be fetched
        REQUIRE(r.ok());
        CHECK(r.cfg->auth.audience.empty());
        CHECK(warns_audience(r));
        CHECK_FALSE(warns_audience(load(base)));  // no key source: JWTs are refused anyway
    }
    SECTION("OAuth access tokens (verified locally as JWTs) warn too, until it is set") {
        const auto warns_oauth = [](const load_result& r) {
            return std::any_of(r.cfg->warnings.begin(), r.cfg->warnings.end(), [](const auto& w) {
                return w.find("OAuth access token in JWT format") != std::string::npos;
            });
        };
        const auto r =
            load(with_base("  secret_key: sk_test_x\nauth:\n  accepts_token: [oauth_token]\n"));
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(warns_oauth(r));
        CHECK_FALSE(warns_audience(r));  // the M2M warning is about M2M tokens only
        const auto set = load(with_base(
            "  secret_key: sk_test_x\nauth:\n  accepts_token: [oauth_token]\n  audience: [x]\n"));
        REQUIRE(set.ok());
        CHECK_FALSE(warns_oauth(set));
    }
    SECTION("no warning when M2M tokens are not accepted") {
        const auto r =
            load(with_base("  secret_key: sk_test_x\nauth:\n  accepts_token: [api_key]\n"));
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK_FALSE(warns_audience(r));
    }
    SECTION("an empty entry (an unset variable) is an error with its line, not a silent off") {
        const std::string y = with_base("auth:\n  audience:\n    - \"${EMPTY}\"\n");
        const auto r = load(y);
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].key == "auth.audience");
        CHECK(r.errors[0].line == line_containing(y, "${EMPTY}"));
        const auto bad = load(with_base("auth:\n  audience: {a: 1}\n"));
        REQUIRE(bad.errors.size() == 1);
        CHECK(bad.errors[0].key == "auth.audience");
    }
}

TEST_CASE("session tokens: keys required, auth.authorized_parties", "[config][load][session]") {
    const auto warns_parties = [](const load_result& r) {
        return std::any_of(r.cfg->warnings.begin(), r.cfg->warnings.end(), [](const auto& w) {
            return w.find("auth.authorized_parties is not set") != std::string::npos;
        });
    };
    SECTION("accepted with a key source and a list: no warning") {
        const auto r = load(with_base(
            "  secret_key: sk_test_x\nauth:\n  accepts_token: [session_token]\n"
            "  authorized_parties: [\"https://a.example.com\", https://b.example.com]\n"));
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(r.cfg->auth.authorized_parties ==
              std::vector<std::string>{"https://a.example.com", "https://b.example.com"});
        CHECK_FALSE(warns_parties(r));
    }
    SECTION("accepted without a list: a warning") {
        const auto r =
            load(with_base("  secret_key: sk_test_x\nauth:\n  accepts_token: [session_token]\n"));
        REQUIRE(r.ok());
        CHECK(warns_parties(r));
        CHECK_FALSE(warns_parties(load(base)));  // sessions not accepted
    }
    SECTION("accepted with neither clerk.jwt_key nor clerk.secret_key: an error") {
        const auto r = load(with_base("auth:\n  accepts_token: [m2m_token, session_token]\n"));
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].key == "clerk.jwt_key");
        CHECK(r.errors[0].problem.find("session_token") != std::string::npos);
    }
    SECTION("an empty entry is an error with its line") {
        const std::string y = with_base(
            "  secret_key: sk_test_x\nauth:\n  accepts_token: [session_token]\n"
            "  authorized_parties:\n    - \"${EMPTY}\"\n");
        const auto r = load(y);
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].key == "auth.authorized_parties");
        CHECK(r.errors[0].line == line_containing(y, "${EMPTY}"));
    }
}
