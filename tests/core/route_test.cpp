#include "core/route.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using clerk::core::auth_mode;
using clerk::core::make_route;
using clerk::core::match_route;
using clerk::core::path_matches;
using clerk::core::route;

namespace {

route with_methods(std::string path, std::vector<std::string> methods) {
    route r = make_route(std::move(path));
    r.methods = std::move(methods);
    return r;
}

struct path_case {
    std::string_view name;
    std::string_view rule;
    std::string_view path;
    bool matches;
};

constexpr path_case path_cases[] = {
    {"exact equal", "/healthz", "/healthz", true},
    {"exact longer", "/healthz", "/healthz/x", false},
    {"exact trailing slash", "/healthz", "/healthz/", false},
    {"exact prefix of it", "/healthz", "/health", false},
    {"prefix itself", "/api/*", "/api", true},
    {"prefix with slash", "/api/*", "/api/", true},
    {"prefix below", "/api/*", "/api/x", true},
    {"prefix deep", "/api/*", "/api/x/y/z", true},
    {"prefix not sibling", "/api/*", "/apix", false},
    {"prefix not parent", "/api/*", "/", false},
    {"prefix case-sensitive", "/api/*", "/API/x", false},
    {"catch-all root", "/*", "/", true},
    {"catch-all anything", "/*", "/anything/at/all", true},
    {"nested prefix", "/a/b/*", "/a/b/c", true},
    {"nested prefix sibling", "/a/b/*", "/a/bc", false},
};

}  // namespace

TEST_CASE("make_route splits prefix rules", "[route]") {
    const route api = make_route("/api/*");
    CHECK(api.prefix);
    CHECK(api.match == "/api");
    CHECK(api.path == "/api/*");
    CHECK(api.auth == auth_mode::required);

    const route all = make_route("/*");
    CHECK(all.prefix);
    CHECK(all.match.empty());

    const route exact = make_route("/healthz");
    CHECK_FALSE(exact.prefix);
    CHECK(exact.match == "/healthz");
}

TEST_CASE("path_matches", "[route]") {
    for (const auto& c : path_cases) {
        SECTION(std::string(c.name)) {
            const route r = make_route(std::string(c.rule));
            INFO(c.rule << " vs " << c.path);
            CHECK(path_matches(r, c.path) == c.matches);
        }
    }
}

TEST_CASE("match_route: first match wins, methods fall through", "[route]") {
    std::vector<route> routes;
    routes.push_back(with_methods("/healthz", {"GET", "HEAD"}));
    routes.back().auth = auth_mode::none;
    routes.push_back(make_route("/admin/*"));
    routes.back().require_scopes = {"mch_admin"};
    routes.push_back(make_route("/admin/open"));  // shadowed by the prefix rule above
    routes.push_back(with_methods("/api/*", {"POST"}));
    routes.push_back(make_route("/api/*"));

    struct match_case {
        std::string_view name;
        std::string_view method;
        std::string_view path;
        int index;  // -1: no rule
    };
    constexpr match_case cases[] = {
        {"exact with method", "GET", "/healthz", 0},
        {"exact with second method", "HEAD", "/healthz", 0},
        {"method filtered falls through to nothing", "POST", "/healthz", -1},
        {"methods are case-sensitive", "get", "/healthz", -1},
        {"prefix", "GET", "/admin/users", 1},
        {"prefix root", "DELETE", "/admin", 1},
        {"first match wins over exact", "GET", "/admin/open", 1},
        {"method rule", "POST", "/api/x", 3},
        {"falls through to later rule", "GET", "/api/x", 4},
        {"no match", "GET", "/other", -1},
        {"no sibling match", "GET", "/adminx", -1},
    };
    for (const auto& c : cases) {
        SECTION(std::string(c.name)) {
            const route* r = match_route(routes, c.method, c.path);
            if (c.index < 0) {
                CHECK(r == nullptr);
            } else {
                CHECK(r == &routes[static_cast<std::size_t>(c.index)]);
            }
        }
    }
}

TEST_CASE("match_route: catch-all and empty rule list", "[route]") {
    const std::vector<route> none;
    CHECK(match_route(none, "GET", "/") == nullptr);

    const std::vector<route> all{make_route("/*")};
    CHECK(match_route(all, "GET", "/") == &all[0]);
    CHECK(match_route(all, "PATCH", "/deep/path") == &all[0]);
}
