#include "core/problem.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

using clerk::core::decision_kind;
using clerk::core::problem_body;
using clerk::core::problem_for;

namespace {

struct row {
    std::string_view name;
    decision_kind kind;
    int status;
    std::string_view error;
    std::string_view www_authenticate;
    std::string_view retry_after;
};

// docs/reference.md §6, verbatim.
constexpr row table[] = {
    {"allow", decision_kind::allow, 200, "", "", ""},
    {"missing token", decision_kind::missing_token, 401, "missing_token",
     R"(Bearer realm="clerk-m2m-proxy")", ""},
    {"invalid request", decision_kind::invalid_request, 401, "invalid_request",
     R"(Bearer error="invalid_request")", ""},
    {"invalid token", decision_kind::invalid_token, 401, "invalid_token",
     R"(Bearer error="invalid_token")", ""},
    {"insufficient scope", decision_kind::insufficient_scope, 403, "insufficient_scope",
     R"(Bearer error="insufficient_scope")", ""},
    {"auth unavailable", decision_kind::auth_unavailable, 503, "auth_unavailable", "", "1"},
    {"upstream unavailable", decision_kind::upstream_unavailable, 502, "upstream_unavailable", "",
     ""},
    {"upstream timeout", decision_kind::upstream_timeout, 504, "upstream_timeout", "", ""},
    {"bad request", decision_kind::bad_request, 400, "bad_request", "", ""},
    {"headers too large", decision_kind::headers_too_large, 431, "headers_too_large", "", ""},
    {"body too large", decision_kind::body_too_large, 413, "body_too_large", "", ""},
};

}  // namespace

TEST_CASE("problem_for follows docs/reference.md §6", "[problem]") {
    for (const auto& r : table) {
        SECTION(std::string(r.name)) {
            const auto p = problem_for(r.kind);
            CHECK(p.status == r.status);
            CHECK(p.error == r.error);
            CHECK(p.www_authenticate == r.www_authenticate);
            CHECK(p.retry_after == r.retry_after);
        }
    }
}

TEST_CASE("problem_body renders compact JSON", "[problem]") {
    CHECK(problem_body(decision_kind::invalid_token, "malformed", "req-1") ==
          R"({"error":"invalid_token","reason":"malformed","request_id":"req-1"})");
    CHECK(problem_body(decision_kind::missing_token, "", "req-2") ==
          R"({"error":"missing_token","request_id":"req-2"})");
    CHECK(problem_body(decision_kind::auth_unavailable, "", "") ==
          R"({"error":"auth_unavailable","request_id":""})");
}

TEST_CASE("problem_body escapes and never throws", "[problem]") {
    SECTION("quotes and control characters are escaped") {
        const std::string body = problem_body(decision_kind::bad_request, "x", "a\"b\n\\c");
        const auto j = nlohmann::json::parse(body, nullptr, false);
        REQUIRE(j.is_object());
        CHECK(j["request_id"] == "a\"b\n\\c");
        CHECK(body.find('\n') == std::string::npos);
    }
    SECTION("invalid UTF-8 in a client-supplied request id is replaced") {
        std::string body;
        REQUIRE_NOTHROW(body = problem_body(decision_kind::bad_request, "", "id-\xff\xfe"));
        const auto j = nlohmann::json::parse(body, nullptr, false);
        REQUIRE(j.is_object());
        CHECK(j["request_id"] == "id-\xEF\xBF\xBD\xEF\xBF\xBD");
    }
}
