#include "core/clerk_response.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using clerk::core::clerk_outcome_kind;
using clerk::core::map_verify_response;
using clerk::core::parse_retry_after;
using namespace std::chrono_literals;

namespace {

// 2024-05-28T08:00:00Z, the spec example's timestamps.
const clerk::core::sys_time now{std::chrono::milliseconds(1716883200000)};

constexpr std::string_view valid_body = R"({
  "object": "machine_to_machine_token",
  "id": "mt_f7f0ba8c3b4843ce7d85fcdd5e71853e",
  "subject": "mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk",
  "claims": {"important_metadata": "Some useful data", "ü": "é"},
  "scopes": ["mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk", "mch_2yGkLpQ7Y3rXSwtU24CzTk9I7Em"],
  "revoked": false, "revocation_reason": null, "expired": false,
  "expiration": 1716886800000, "last_used_at": 1716883200000,
  "created_at": 1716883200000, "updated_at": 1716883200000
})";

std::string with(std::string_view from, std::string_view to) {
    std::string s(valid_body);
    auto pos = s.find(from);
    REQUIRE(pos != std::string::npos);
    s.replace(pos, from.size(), to);
    return s;
}

}  // namespace

TEST_CASE("200 with a live token is valid and yields the identity", "[clerk_response]") {
    auto o = map_verify_response(200, "", valid_body, now);
    REQUIRE(o.kind == clerk_outcome_kind::valid);
    REQUIRE(o.id);
    CHECK(o.id->type == clerk::core::token_type::m2m_token);
    CHECK(o.id->format == clerk::core::token_format::opaque);
    CHECK(o.id->token_id == "mt_f7f0ba8c3b4843ce7d85fcdd5e71853e");
    CHECK(o.id->who->subject == "mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk");
    CHECK(o.id->who->scopes.size() == 2);
    CHECK(o.id->who->scopes[1] == "mch_2yGkLpQ7Y3rXSwtU24CzTk9I7Em");
    CHECK(o.id->who->claims["important_metadata"] == "Some useful data");
    CHECK(o.id->who->claims_compact ==
          R"({"important_metadata":"Some useful data","\u00fc":"\u00e9"})");
    REQUIRE(o.id->expires_at_ms);
    CHECK(*o.id->expires_at_ms == 1716886800000);
}

TEST_CASE("200: optional fields default", "[clerk_response]") {
    constexpr std::string_view minimal =
        R"({"object":"machine_to_machine_token","id":"mt_1","subject":"mch_1"})";
    auto o = map_verify_response(200, "", minimal, now);
    REQUIRE(o.kind == clerk_outcome_kind::valid);
    CHECK(o.id->who->scopes.empty());
    CHECK(o.id->who->claims.is_null());
    CHECK(o.id->who->claims_compact.empty());
    CHECK_FALSE(o.id->expires_at_ms);

    auto nulls = map_verify_response(
        200, "",
        R"({"object":"machine_to_machine_token","id":"mt_1","subject":"mch_1","scopes":null,
            "claims":null,"expiration":null,"revoked":null,"expired":null})",
        now);
    REQUIRE(nulls.kind == clerk_outcome_kind::valid);
    CHECK_FALSE(nulls.id->expires_at_ms);
}

TEST_CASE("200 but revoked / expired / past expiration is invalid", "[clerk_response]") {
    auto revoked =
        map_verify_response(200, "", with(R"("revoked": false)", R"("revoked": true)"), now);
    CHECK(revoked.kind == clerk_outcome_kind::invalid);
    CHECK(revoked.reason == "revoked");
    CHECK_FALSE(revoked.id);

    auto expired =
        map_verify_response(200, "", with(R"("expired": false)", R"("expired": true)"), now);
    CHECK(expired.kind == clerk_outcome_kind::invalid);
    CHECK(expired.reason == "expired");

    auto past = map_verify_response(
        200, "", with(R"("expiration": 1716886800000)", R"("expiration": 1716883199999)"), now);
    CHECK(past.kind == clerk_outcome_kind::invalid);
    CHECK(past.reason == "expired");

    auto exactly_now = map_verify_response(
        200, "", with(R"("expiration": 1716886800000)", R"("expiration": 1716883200000)"), now);
    CHECK(exactly_now.reason == "expired");

    auto fractional = map_verify_response(
        200, "", with(R"("expiration": 1716886800000)", R"("expiration": 1716883200000.5)"), now);
    CHECK(fractional.kind == clerk_outcome_kind::invalid);

    auto both =
        map_verify_response(200, "",
                            with(R"("revoked": false, "revocation_reason": null, "expired": false)",
                                 R"("revoked": true, "revocation_reason": "x", "expired": true)"),
                            now);
    CHECK(both.reason == "revoked");
}

TEST_CASE("200 with malformed JSON or missing fields is a Clerk failure", "[clerk_response]") {
    auto retryable = [](std::string_view body) {
        auto o = map_verify_response(200, "", body, now);
        CHECK_FALSE(o.id);
        return o.kind == clerk_outcome_kind::retryable;
    };
    CHECK(retryable(""));
    CHECK(retryable("not json"));
    CHECK(retryable(R"({"object":"machine_to_machine_token","id":"mt_1")"));  // truncated
    CHECK(retryable("[]"));
    CHECK(retryable("null"));
    CHECK(retryable(R"("mt_1")"));
    CHECK(retryable(R"({"id":"mt_1","subject":"mch_1"})"));  // no object
    CHECK(retryable(R"({"object":"api_key","id":"mt_1","subject":"mch_1"})"));
    CHECK(retryable(R"({"object":"machine_to_machine_token","subject":"mch_1"})"));
    CHECK(retryable(R"({"object":"machine_to_machine_token","id":"mt_1"})"));
    CHECK(retryable(R"({"object":"machine_to_machine_token","id":1,"subject":"mch_1"})"));
    CHECK(retryable(R"({"object":"machine_to_machine_token","id":"mt_1","subject":""})"));
    CHECK(retryable(with(R"("scopes": [)", R"("scopes": [1, )")));
    CHECK(retryable(with(R"("scopes": [)", R"("scopes": "a", "x": [)")));
    CHECK(retryable(with(R"("claims": {)", R"("claims": [1], "x": {)")));
    CHECK(retryable(with(R"("expiration": 1716886800000)", R"("expiration": "soon")")));
    CHECK(retryable(with(R"("revoked": false)", R"("revoked": "false")")));
    CHECK(retryable(with(R"("expired": false)", R"("expired": 0)")));
    // Values that would be unsafe in a forwarded header are refused.
    CHECK(retryable(with("mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk\",\n  \"claims",
                         "mch_2x\\r\\nX-Evil: 1\",\n  \"claims")));
    CHECK(retryable(with(R"("scopes": [)", R"("scopes": ["a,b", )")));
    CHECK(retryable(with(R"("scopes": [)", R"("scopes": ["a b", )")));
    // Invalid UTF-8 in a string.
    CHECK(retryable(with(R"("Some useful data")", "\"\xff\xfe\"")));
}

TEST_CASE("JSON is parsed whatever the Content-Type says", "[clerk_response]") {
    // The mapper never sees the Content-Type: `application/json; charset=utf-8` (which the
    // official SDK mishandles) or text/plain bodies are parsed all the same.
    auto o = map_verify_response(200, "", valid_body, now);
    CHECK(o.kind == clerk_outcome_kind::valid);
    // Appended, not `std::string + std::string&&`: GCC 12 at -O3 misreads that (-Warray-bounds).
    std::string padded = "\r\n ";
    padded += valid_body;
    padded += '\n';
    auto bom_less_whitespace = map_verify_response(200, "", padded, now);
    CHECK(bom_less_whitespace.kind == clerk_outcome_kind::valid);
}

TEST_CASE("404/400/422 are definitive rejections", "[clerk_response]") {
    struct row {
        int status;
        std::string_view body;
        std::string_view reason;
    };
    const row rows[] = {
        {404, "", "not_found"},
        {404, R"({"errors":[{"code":"resource_not_found","message":"x"}]})", "not_found"},
        {404, "<html>not json</html>", "not_found"},
        {400, "", "invalid"},
        {400, R"({"errors":[{"code":"form_param_invalid","message":"x"}]})", "invalid"},
        {422, R"({"errors":[]})", "invalid"},
        {422, R"({"errors":[{"code":"token_revoked"}]})", "revoked"},
        {400, R"({"errors":[{"code":"m2m_token_expired","message":"x"}]})", "expired"},
        {404, R"({"errors":[{"code":"token_revoked"}]})", "revoked"},
        {400, R"({"errors":[{"code":7}]})", "invalid"},
        {400, R"({"errors":{"code":"token_revoked"}})", "invalid"},
    };
    for (const auto& r : rows) {
        INFO(r.status << " " << r.body);
        auto o = map_verify_response(r.status, "", r.body, now);
        CHECK(o.kind == clerk_outcome_kind::invalid);
        CHECK(o.reason == r.reason);
        CHECK_FALSE(o.id);
    }
}

TEST_CASE("401/403 mean our key is wrong", "[clerk_response]") {
    auto o401 = map_verify_response(
        401, "", R"({"errors":[{"code":"machine_secret_key_invalid","message":"x"}]})", now);
    CHECK(o401.kind == clerk_outcome_kind::key_rejected);
    CHECK(map_verify_response(403, "", "", now).kind == clerk_outcome_kind::key_rejected);
    // Even a body that looks like a valid token is not accepted.
    CHECK(map_verify_response(401, "", valid_body, now).kind == clerk_outcome_kind::key_rejected);
}

TEST_CASE("429 carries Retry-After", "[clerk_response]") {
    auto o = map_verify_response(429, "2", "", now);
    CHECK(o.kind == clerk_outcome_kind::rate_limited);
    REQUIRE(o.retry_after);
    CHECK(*o.retry_after == 2s);
    auto none = map_verify_response(429, "", "", now);
    CHECK(none.kind == clerk_outcome_kind::rate_limited);
    CHECK_FALSE(none.retry_after);
    auto date = map_verify_response(429, "Wed, 21 Oct 2015 07:28:00 GMT", "", now);
    CHECK_FALSE(date.retry_after);
}

TEST_CASE("5xx retry, other statuses are unexpected", "[clerk_response]") {
    for (int s : {500, 502, 503, 504, 599}) {
        CHECK(map_verify_response(s, "", valid_body, now).kind == clerk_outcome_kind::retryable);
    }
    for (int s : {201, 204, 301, 302, 405, 409, 410, 418, 600}) {
        INFO(s);
        auto o = map_verify_response(s, "", valid_body, now);
        CHECK(o.kind == clerk_outcome_kind::unexpected);
        CHECK_FALSE(o.id);
    }
}

TEST_CASE("parse_retry_after", "[clerk_response]") {
    CHECK(parse_retry_after("0") == 0s);
    CHECK(parse_retry_after(" 5 ") == 5s);
    CHECK(parse_retry_after("120") == 120s);
    CHECK(parse_retry_after("99999999") == 86400s);
    CHECK_FALSE(parse_retry_after(""));
    CHECK_FALSE(parse_retry_after("-1"));
    CHECK_FALSE(parse_retry_after("1.5"));
    CHECK_FALSE(parse_retry_after("1s"));
    CHECK_FALSE(parse_retry_after("99999999999999999999"));
}
