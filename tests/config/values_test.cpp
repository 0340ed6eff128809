#include "config/values.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using namespace clerk::config;

namespace {

struct listen_case {
    std::string_view text;
    std::string_view host;
    int port;  ///< -1: invalid
};

constexpr listen_case listen_cases[] = {
    {"0.0.0.0:8080", "0.0.0.0", 8080},
    {"127.0.0.1:0", "127.0.0.1", 0},
    {"localhost:65535", "localhost", 65535},
    {"[::1]:8080", "::1", 8080},
    {"[::]:0", "::", 0},
    {"[::ffff:127.0.0.1]:1", "::ffff:127.0.0.1", 1},
    {"0.0.0.0:65536", "", -1},
    {"0.0.0.0:-1", "", -1},
    {"0.0.0.0:", "", -1},
    {"0.0.0.0", "", -1},
    {":8080", "", -1},
    {"::1:8080", "", -1},
    {"[::1]", "", -1},
    {"[::1]:", "", -1},
    {"[]:80", "", -1},
    {"bad host:80", "", -1},
    {"", "", -1},
};

struct upstream_case {
    std::string_view url;
    upstream_scheme scheme;
    std::string_view host;
    int port;
    std::string_view host_header;
    std::string_view base_path;
};

constexpr upstream_case upstream_cases[] = {
    {"http://127.0.0.1:3000", upstream_scheme::http, "127.0.0.1", 3000, "127.0.0.1:3000", ""},
    {"http://app", upstream_scheme::http, "app", 80, "app", ""},
    {"http://app:80/", upstream_scheme::http, "app", 80, "app", ""},
    {"https://App.Example/v1//", upstream_scheme::https, "app.example", 443, "app.example", "/v1"},
    {"HTTPS://x:8443/a/b", upstream_scheme::https, "x", 8443, "x:8443", "/a/b"},
    {"http://[::1]:3000", upstream_scheme::http, "::1", 3000, "[::1]:3000", ""},
    {"https://[2001:db8::1]", upstream_scheme::https, "2001:db8::1", 443, "[2001:db8::1]", ""},
};

constexpr std::string_view bad_upstreams[] = {
    "",
    "app:3000",
    "ftp://app",
    "http:/app",
    "http://",
    "http://:80",
    "http://app:0",
    "http://app:65536",
    "http://app:x",
    "http://u@app",
    "http://app/a?b",
    "http://app/#f",
    "http://app/a b",
    "http://[::1",
    "http://[zz]:1",
    "unix:",
    "unix:/",
    "unix:sock",
    "tcp://app:1",
};

struct path_case {
    std::string_view path;
    bool ok;
};

constexpr path_case path_cases[] = {
    {"/", true},
    {"/*", true},
    {"/healthz", true},
    {"/api/*", true},
    {"/api/v1/", true},
    {"/a-b_c.d~e/%41", true},
    {"/users/@me:x", true},
    {"", false},
    {"api", false},
    {"*", false},
    {"/api*", false},
    {"/*/x", false},
    {"/a/**", false},
    {"/a//b", false},
    {"//", false},
    {"/a/./b", false},
    {"/a/..", false},
    {"/..", false},
    {"/a?x", false},
    {"/a#x", false},
    {"/a b", false},
    {"/a%2", false},
    {"/a%zz", false},
    {"/a\\b", false},
};

}  // namespace

TEST_CASE("parse_listen_address", "[config][values]") {
    for (const auto& c : listen_cases) {
        INFO("text: " << c.text);
        std::string problem;
        const auto a = parse_listen_address(c.text, problem);
        if (c.port < 0) {
            CHECK_FALSE(a.has_value());
            CHECK_FALSE(problem.empty());
            continue;
        }
        REQUIRE(a.has_value());
        CHECK(a->host == c.host);
        CHECK(a->port == c.port);
        CHECK(a->text == c.text);
    }
}

TEST_CASE("parse_upstream_url accepts http, https and unix", "[config][values]") {
    for (const auto& c : upstream_cases) {
        INFO("url: " << c.url);
        upstream_config u;
        REQUIRE(parse_upstream_url(c.url, u).empty());
        CHECK(u.url == c.url);
        CHECK(u.scheme == c.scheme);
        CHECK(u.host == c.host);
        CHECK(u.port == c.port);
        CHECK(u.host_header == c.host_header);
        CHECK(u.base_path == c.base_path);
    }
    upstream_config u;
    REQUIRE(parse_upstream_url("unix:/run/app.sock", u).empty());
    CHECK(u.scheme == upstream_scheme::unix_socket);
    CHECK(u.unix_path == "/run/app.sock");
    CHECK(u.host_header == "localhost");
}

TEST_CASE("parse_upstream_url refuses everything else", "[config][values]") {
    for (std::string_view url : bad_upstreams) {
        INFO("url: " << url);
        upstream_config u;
        CHECK_FALSE(parse_upstream_url(url, u).empty());
    }
    upstream_config u;
    const std::string long_path = "unix:/" + std::string(120, 's');
    CHECK_THAT(parse_upstream_url(long_path, u), Catch::Matchers::Contains("longer than"));
}

TEST_CASE("parse_api_url", "[config][values]") {
    clerk_config c;
    REQUIRE(parse_api_url("https://api.clerk.com/", c).empty());
    CHECK(c.api_url == "https://api.clerk.com");
    CHECK(c.api_url_is_https);
    CHECK(c.api_host == "api.clerk.com");
    CHECK(c.api_port == 443);
    CHECK(c.api_base_path.empty());

    REQUIRE(parse_api_url("http://127.0.0.1:8090/prefix/", c).empty());
    CHECK(c.api_url == "http://127.0.0.1:8090/prefix");
    CHECK_FALSE(c.api_url_is_https);
    CHECK(c.api_port == 8090);
    CHECK(c.api_base_path == "/prefix");

    CHECK_FALSE(parse_api_url("unix:/x.sock", c).empty());
    CHECK_FALSE(parse_api_url("api.clerk.com", c).empty());
}

TEST_CASE("route_path_problem", "[config][values]") {
    for (const auto& c : path_cases) {
        INFO("path: " << c.path);
        CHECK(route_path_problem(c.path).empty() == c.ok);
    }
}

TEST_CASE("is_http_token and is_loopback_host", "[config][values]") {
    CHECK(is_http_token("GET"));
    CHECK(is_http_token("X-Clerk-Subject"));
    CHECK(is_http_token("M-SEARCH"));
    CHECK_FALSE(is_http_token(""));
    CHECK_FALSE(is_http_token("GE T"));
    CHECK_FALSE(is_http_token("X:Y"));
    CHECK_FALSE(is_http_token("X\r\nY"));
    CHECK_FALSE(is_http_token("(GET)"));

    CHECK(is_loopback_host("localhost"));
    CHECK(is_loopback_host("LOCALHOST"));
    CHECK(is_loopback_host("clerk.localhost"));
    CHECK(is_loopback_host("127.0.0.1"));
    CHECK(is_loopback_host("127.1.2.3"));
    CHECK(is_loopback_host("::1"));
    CHECK_FALSE(is_loopback_host("127.evil.com"));
    CHECK_FALSE(is_loopback_host("10.0.0.1"));
    CHECK_FALSE(is_loopback_host("localhost.example.com"));
    CHECK_FALSE(is_loopback_host("::"));
}

TEST_CASE("file_problem", "[config][values]") {
    CHECK(file_problem(std::string(CLERK_CONFIG_FIXTURES) + "/jwt_public.pem").empty());
    CHECK_THAT(file_problem("/nonexistent/file"), Catch::Matchers::Contains("does not exist"));
    CHECK_THAT(file_problem(CLERK_CONFIG_FIXTURES), Catch::Matchers::Contains("not a regular"));
}

TEST_CASE("parse_redis_url: redis, rediss and unix forms", "[config][values]") {
    using clerk::config::parse_redis_url;
    using clerk::config::redis_transport;
    clerk::config::shared_cache_config c;
    REQUIRE(parse_redis_url("redis://127.0.0.1:6380/2", c).empty());
    CHECK(c.transport == redis_transport::tcp);
    CHECK(c.host == "127.0.0.1");
    CHECK(c.port == 6380);
    CHECK(c.db == 2);
    CHECK(c.password.empty());

    REQUIRE(parse_redis_url("rediss://app:p%40ss:w@cache.internal", c).empty());
    CHECK(c.transport == redis_transport::tls);
    CHECK(c.host == "cache.internal");
    CHECK(c.port == 6379);
    CHECK(c.username == "app");
    CHECK(c.password == "p@ss:w");
    CHECK(c.db == 0);

    REQUIRE(parse_redis_url("redis://:secret@[::1]:7000", c).empty());
    CHECK(c.host == "::1");
    CHECK(c.port == 7000);
    CHECK(c.username.empty());
    CHECK(c.password == "secret");

    REQUIRE(parse_redis_url("unix://:secret@/run/redis/redis.sock?db=3", c).empty());
    CHECK(c.transport == redis_transport::unix_socket);
    CHECK(c.path == "/run/redis/redis.sock");
    CHECK(c.password == "secret");
    CHECK(c.db == 3);
    REQUIRE(parse_redis_url("unix:///tmp/r.sock", c).empty());
    CHECK(c.path == "/tmp/r.sock");
}

TEST_CASE("parse_redis_url: refusals never echo the URL (it may hold a password)",
          "[config][values]") {
    using clerk::config::parse_redis_url;
    clerk::config::shared_cache_config c;
    for (const char* bad :
         {"http://h:1", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x",
          "redis://secretpw@h", "redis://:p%zz@h", "unix://secretpw@", "unix:///s?x=1",
          "redis://[::1", "rediss://:secretpw@:6379"}) {
        INFO(bad);
        const auto p = parse_redis_url(bad, c);
        CHECK_FALSE(p.empty());
        CHECK(p.find("secretpw") == std::string::npos);
        CHECK(p.find(bad) == std::string::npos);
    }
}
