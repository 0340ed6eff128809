#include "core/path_normalizer.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using clerk::core::normalize_target;
using clerk::core::path_status;

namespace {

struct ok_case {
    std::string_view name;
    std::string_view target;
    std::string_view path;
    std::string_view query;
    bool has_query;
};

constexpr ok_case ok_cases[] = {
    {"root", "/", "/", "", false},
    {"plain", "/api/v1/items", "/api/v1/items", "", false},
    {"trailing slash kept", "/a/", "/a/", "", false},
    {"dot at end keeps slash", "/a/.", "/a/", "", false},
    {"dotdot at end keeps slash", "/a/b/..", "/a/", "", false},
    {"dot segments", "/a/./b/../c", "/a/c", "", false},
    {"double slash merged", "//admin", "/admin", "", false},
    {"slash runs merged", "/a///b//", "/a/b/", "", false},
    {"encoded dotdot resolves", "/a/%2e%2e/admin", "/admin", "", false},
    {"encoded dotdot upper", "/a/%2E%2E/admin", "/admin", "", false},
    {"mixed encoded dotdot", "/a/.%2E/admin", "/admin", "", false},
    {"encoded dot", "/a/%2e/b", "/a/b", "", false},
    {"unreserved tilde decoded", "/%7Euser", "/~user", "", false},
    {"unreserved alpha decoded", "/%41%62c", "/Abc", "", false},
    {"unreserved dash underscore", "/%2D%5F", "/-_", "", false},
    {"reserved question kept", "/a%3Fb", "/a%3Fb", "", false},
    {"reserved hex upper-cased", "/a%3fb%2a", "/a%3Fb%2A", "", false},
    {"percent sign kept escaped", "/100%25", "/100%25", "", false},
    {"double encoding not decoded twice", "/%252e%252e/admin", "/%252e%252e/admin", "", false},
    {"sub-delims kept raw", "/a;b=c,d@e:f", "/a;b=c,d@e:f", "", false},
    {"non-ascii escaped", "/\xC3\xA9", "/%C3%A9", "", false},
    {"utf8 escape kept", "/%c3%a9", "/%C3%A9", "", false},
    {"query kept byte for byte", "/a/../b?x=%2F&y=..//z", "/b", "x=%2F&y=..//z", true},
    {"empty query", "/a?", "/a", "", true},
    {"query with second question mark", "/a?b?c", "/a", "b?c", true},
    {"fragment dropped", "/a#frag", "/a", "", false},
    {"fragment after query dropped", "/a?q=1#frag", "/a", "q=1", true},
    {"dots in names are not segments", "/a/..b/.c/...", "/a/..b/.c/...", "", false},
    {"query does not need a valid path escape", "/a?%zz", "/a", "%zz", true},
};

struct err_case {
    std::string_view name;
    std::string_view target;
    path_status status;
};

constexpr err_case err_cases[] = {
    {"empty", "", path_status::not_origin_form},
    {"asterisk form", "*", path_status::not_origin_form},
    {"absolute form", "http://x/", path_status::not_origin_form},
    {"authority form", "example.com:443", path_status::not_origin_form},
    {"only fragment", "#/a", path_status::not_origin_form},
    {"encoded slash bypass", "/public/..%2fadmin", path_status::encoded_slash},
    {"encoded slash upper", "/a%2Fb", path_status::encoded_slash},
    {"encoded backslash", "/a%5cb", path_status::encoded_backslash},
    {"encoded backslash upper", "/a%5Cb", path_status::encoded_backslash},
    {"raw backslash", "/a\\..\\admin", path_status::encoded_backslash},
    {"encoded nul", "/a%00b", path_status::nul},
    {"raw nul", std::string_view("/a\0b", 4), path_status::nul},
    {"encoded control", "/a%0d%0aX:1", path_status::nul},
    {"raw control", "/a\x01", path_status::nul},
    {"encoded del", "/a%7F", path_status::nul},
    {"bad percent letters", "/a%zz", path_status::bad_percent},
    {"bad percent one digit", "/a%2", path_status::bad_percent},
    {"bad percent at end", "/a%", path_status::bad_percent},
    {"bad percent before slash", "/a%2/b", path_status::bad_percent},
    {"dotdot escapes root", "/..", path_status::escapes_root},
    {"dotdot escapes root later", "/a/../..", path_status::escapes_root},
    {"encoded dotdot escapes root", "/%2e%2e/etc/passwd", path_status::escapes_root},
    {"dotdot after merged slashes", "//../a", path_status::escapes_root},
};

}  // namespace

TEST_CASE("normalize_target accepts and normalizes", "[path]") {
    for (const auto& c : ok_cases) {
        SECTION(std::string(c.name)) {
            const auto r = normalize_target(c.target);
            INFO("target: " << c.target);
            REQUIRE(r.status == path_status::ok);
            CHECK(r.path == c.path);
            CHECK(r.query == c.query);
            CHECK(r.has_query == c.has_query);
        }
    }
}

TEST_CASE("normalize_target refuses", "[path]") {
    for (const auto& c : err_cases) {
        SECTION(std::string(c.name)) {
            const auto r = normalize_target(c.target);
            INFO("target: " << c.target << " got " << to_string(r.status));
            CHECK(r.status == c.status);
        }
    }
}

TEST_CASE("normalize_target is idempotent on its own output", "[path]") {
    for (const auto& c : ok_cases) {
        const auto once = normalize_target(c.target);
        const auto twice = normalize_target(once.path);
        INFO("target: " << c.target);
        CHECK(twice.status == path_status::ok);
        CHECK(twice.path == once.path);
    }
}

TEST_CASE("path_status names", "[path]") {
    CHECK(to_string(path_status::ok) == "ok");
    CHECK(to_string(path_status::escapes_root) == "escapes_root");
    CHECK(to_string(path_status::encoded_slash) == "encoded_slash");
    CHECK(to_string(path_status::bad_percent) == "bad_percent");
}
