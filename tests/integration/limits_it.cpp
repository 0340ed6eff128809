// limits.* through the real binary: header/body limits, slowloris, idle, max_connections.
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace clerk::it;

namespace {

std::string config_with_limits(const std::string& upstream, const std::string& limits) {
    return "listen: \"127.0.0.1:0\"\nupstream:\n  url: \"" + upstream +
           "\"\nclerk:\n  api_url: \"http://127.0.0.1:1\"\n  machine_secret_key: \"ak_test\"\n"
           "admin:\n  listen: \"\"\nroutes:\n  - path: /open/*\n    auth: none\nlimits:\n" +
           limits;
}

}  // namespace

TEST_CASE("headers over max_header_bytes: 431 headers_too_large", "[it][limits]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, config_with_limits(up.url(), "  max_header_bytes: 1024\n"));
    http_client c(proxy.port());
    const auto r = c.get("/open/x", {{"X-Big", std::string(2000, 'a')}});
    CHECK(r.status == 431);
    CHECK(nlohmann::json::parse(r.body)["error"] == "headers_too_large");
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(!r.header("X-Request-Id").empty());
    CHECK(up.heads_received() == 0);
    http_client ok(proxy.port());
    CHECK(ok.get("/open/x", {{"X-Small", std::string(200, 'a')}}).status == 200);
}

TEST_CASE("bodies over max_body_bytes: 413", "[it][limits]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, config_with_limits(up.url(), "  max_body_bytes: 1000\n"));
    SECTION("Content-Length over the limit is refused before reading") {
        http_client c(proxy.port());
        c.send_raw("POST /open/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n");
        const auto r = c.read_response();
        CHECK(r.status == 413);
        CHECK(nlohmann::json::parse(r.body)["error"] == "body_too_large");
        CHECK_FALSE(r.keep_alive);
        CHECK(up.heads_received() == 0);
    }
    SECTION("a chunked body is cut when it crosses the limit") {
        http_client c(proxy.port());
        const auto r = c.upload("POST", "/open/x", 5000, true, {}, nullptr);
        CHECK(r.status == 413);
        CHECK_FALSE(r.keep_alive);
    }
    SECTION("within the limit passes") {
        http_client c(proxy.port());
        CHECK(c.upload("POST", "/open/x", 1000, true, {}, nullptr).status == 200);
        CHECK(c.upload("POST", "/open/x", 1000, false, {}, nullptr).status == 200);
    }
}

TEST_CASE("header_timeout closes a slowloris connection", "[it][limits]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, config_with_limits(up.url(), "  header_timeout: 300ms\n"));
    http_client::options o;
    o.timeout = 5s;
    http_client c(proxy.port(), o);
    const auto start = std::chrono::steady_clock::now();
    c.send_raw("GET /open/x HTTP/1.1\r\nHost: a\r\nX-Slow: ");
    CHECK(c.closed_by_peer());
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK(up.heads_received() == 0);

    // A connection that never sends anything is closed too.
    http_client silent(proxy.port(), o);
    CHECK(silent.closed_by_peer());
}

TEST_CASE("idle_timeout closes an idle keep-alive connection", "[it][limits]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, config_with_limits(up.url(), "  idle_timeout: 300ms\n"));
    http_client::options o;
    o.timeout = 5s;
    http_client c(proxy.port(), o);
    CHECK(c.get("/open/x").status == 200);
    const auto start = std::chrono::steady_clock::now();
    CHECK(c.closed_by_peer());
    CHECK(std::chrono::steady_clock::now() - start < 3s);
}

TEST_CASE("max_connections: excess connections are closed at once", "[it][limits]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, config_with_limits(up.url(), "  max_connections: 2\n"));
    http_client a(proxy.port());
    http_client b(proxy.port());
    CHECK(a.get("/open/a").status == 200);
    CHECK(b.get("/open/b").status == 200);
    http_client::options o;
    o.timeout = 3s;
    http_client excess(proxy.port(), o);
    CHECK(excess.closed_by_peer());
    CHECK(a.get("/open/a").status == 200);  // the admitted ones are unaffected
}
