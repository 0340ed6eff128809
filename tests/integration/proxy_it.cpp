// The data path of issue #3 through the real binary: forwarding, header rewrite, refusals.
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace clerk::it;

namespace {

/// A loopback port that nothing listens on (bound, read, closed).
std::uint16_t closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

nlohmann::json body_json(const http_response& r) {
    return nlohmann::json::parse(r.body);
}

}  // namespace

TEST_CASE("forwards an auth: none request with the rewritten headers", "[it][proxy]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    const auto r =
        c.get("/open/a/./b/../c//d?x=1%2F&y", {{"Host", "svc.example"},
                                               {"X-Request-Id", "client-req-1"},
                                               {"X-Forwarded-For", "10.0.0.1"},
                                               {"X-Forwarded-Proto", "https"},
                                               {"Authorization", "Bearer mt_should_not_pass"},
                                               {"X-Clerk-Subject", "mch_spoofed"},
                                               {"X-Clerk-Token-Type", "m2m_token"},
                                               {"x-clerk-whatever", "spoofed"},
                                               {"Connection", "X-Private"},
                                               {"X-Private", "secret"},
                                               {"Keep-Alive", "timeout=5"},
                                               {"Accept", "text/plain"}});
    CHECK(r.status == 200);
    CHECK(r.body == "upstream ok");
    CHECK(r.header("X-Request-Id") == "client-req-1");
    REQUIRE(up.wait_for_requests(1));
    const auto seen = up.requests().at(0);
    CHECK(seen.method == "GET");
    CHECK(seen.target == "/open/a/c/d?x=1%2F&y");
    CHECK(seen.header("Host") == "svc.example");
    CHECK(seen.header("X-Forwarded-For") == "10.0.0.1, 127.0.0.1");
    CHECK(seen.header("X-Forwarded-Proto") == "http");
    CHECK(seen.header("X-Forwarded-Host") == "svc.example");
    CHECK(seen.header("X-Request-Id") == "client-req-1");
    CHECK(seen.header("Accept") == "text/plain");
    for (const char* gone : {"Authorization", "X-Clerk-Subject", "X-Clerk-Token-Type",
                             "x-clerk-whatever", "X-Private", "Keep-Alive", "Connection"}) {
        INFO(gone);
        CHECK(seen.count(gone) == 0);
    }
}

TEST_CASE("preserve_host: false and a base path in the upstream URL", "[it][proxy]") {
    recording_upstream up;
    temp_dir dir;
    const std::string yaml =
        "listen: \"127.0.0.1:0\"\nupstream:\n  url: \"" + up.url() +
        "/base\"\n  preserve_host: false\nclerk:\n  api_url: \"http://127.0.0.1:1\"\n"
        "  machine_secret_key: \"ak_test\"\nadmin:\n  listen: \"\"\nroutes:\n"
        "  - path: /open/*\n    auth: none\n";
    proxy_process proxy(dir, yaml);
    http_client c(proxy.port());
    CHECK(c.get("/open/x?q=1", {{"Host", "svc.example"}}).status == 200);
    REQUIRE(up.wait_for_requests(1));
    const auto seen = up.requests().at(0);
    CHECK(seen.target == "/base/open/x?q=1");
    CHECK(seen.header("Host") == "127.0.0.1:" + std::to_string(up.port()));
    CHECK(seen.header("X-Forwarded-Host") == "svc.example");
}

TEST_CASE("X-Request-Id is generated when absent or not sane", "[it][proxy]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    const auto a = c.get("/open/x");
    CHECK(std::regex_match(a.header("X-Request-Id"), std::regex("[0-9a-f]{32}")));
    const auto b = c.get("/open/x", {{"X-Request-Id", "has space"}});
    CHECK(std::regex_match(b.header("X-Request-Id"), std::regex("[0-9a-f]{32}")));
    const auto t = c.get("/open/x", {{"X-Request-Id", std::string(129, 'a')}});
    CHECK(t.header("X-Request-Id").size() == 32);
    REQUIRE(up.wait_for_requests(3));
    CHECK(up.requests().at(0).header("X-Request-Id") == a.header("X-Request-Id"));
    // Refusals carry it too.
    const auto refused = c.get("/private", {{"X-Request-Id", "abc.DEF_1-2"}});
    CHECK(refused.status == 401);
    CHECK(refused.header("X-Request-Id") == "abc.DEF_1-2");
    CHECK(body_json(refused)["request_id"] == "abc.DEF_1-2");
}

TEST_CASE("auth refusals that need no Clerk", "[it][proxy][auth]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());

    SECTION("missing token") {
        const auto r = c.get("/api/x", {{"X-Request-Id", "rid1"}});
        CHECK(r.status == 401);
        CHECK(r.body == R"({"error":"missing_token","request_id":"rid1"})");
        CHECK(r.header("Content-Type") == "application/json");
        CHECK(r.header("WWW-Authenticate") == R"(Bearer realm="clerk-m2m-proxy")");
        CHECK(r.header("X-Request-Id") == "rid1");
        CHECK(r.keep_alive);
        const auto basic = c.get("/api/x", {{"Authorization", "Basic dXNlcjpwYXNz"}});
        CHECK(basic.status == 401);
        CHECK(body_json(basic)["error"] == "missing_token");
    }
    SECTION("invalid_request: two Authorization headers, empty or oversized token") {
        for (const auto& headers :
             {http_client::header_list{{"Authorization", "Bearer mt_a"},
                                       {"Authorization", "Bearer mt_b"}},
              http_client::header_list{{"Authorization", "Bearer "}},
              http_client::header_list{{"Authorization", "Bearer mt_" + std::string(5000, 'x')}}}) {
            const auto r = c.get("/api/x", headers);
            CHECK(r.status == 401);
            CHECK(body_json(r)["error"] == "invalid_request");
            CHECK(r.header("WWW-Authenticate") == R"(Bearer error="invalid_request")");
        }
    }
    SECTION("token type not accepted, malformed token") {
        const auto r = c.get("/api/x", {{"Authorization", "Bearer ak_live_abc"}});
        CHECK(r.status == 401);
        CHECK(body_json(r)["error"] == "invalid_token");
        CHECK(body_json(r)["reason"] == "token_type_not_accepted");
        CHECK(r.header("WWW-Authenticate") == R"(Bearer error="invalid_token")");
        const auto m = c.get("/api/x", {{"Authorization", "Bearer not-a-token"}});
        CHECK(m.status == 401);
        CHECK(body_json(m)["reason"] == "malformed");
    }
    SECTION("Clerk unreachable: 503 auth_unavailable with Retry-After") {
        const auto r = c.get("/api/x", {{"Authorization", "Bearer mt_unverifiable"}});
        CHECK(r.status == 503);
        CHECK(body_json(r)["error"] == "auth_unavailable");
        CHECK(r.header("Retry-After") == "1");
    }
    CHECK(up.heads_received() == 0);
    // The token never reaches the logs.
    CHECK(proxy.proc().output().find("mt_unverifiable") == std::string::npos);
    CHECK(proxy.proc().output().find("ak_live_abc") == std::string::npos);
}

TEST_CASE("bad paths are refused with 400 before anything is forwarded", "[it][proxy]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    const std::vector<std::pair<std::string, std::string>> cases{
        {"/open/../../etc/passwd", "escapes_root"},
        {"/open/%2e%2e/%2e%2e/x", "escapes_root"},
        {"/open/a%2Fb", "encoded_slash"},
        {"/open/a%5Cb", "encoded_backslash"},
        {"/open/a%00b", "nul"},
        {"/open/%zz", "bad_percent"},
    };
    for (const auto& [target, reason] : cases) {
        INFO(target);
        http_client c(proxy.port());
        const auto r = c.get(target);
        CHECK(r.status == 400);
        CHECK(body_json(r)["error"] == "bad_request");
        CHECK(body_json(r)["reason"] == reason);
        CHECK(r.header("Content-Type") == "application/json");
    }
    http_client raw(proxy.port());
    raw.send_raw("GET http://evil.example/open/x HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    CHECK(raw.read_response().status == 400);
    CHECK(up.heads_received() == 0);
}

TEST_CASE("request smuggling shapes are 400 and close the connection", "[it][proxy]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    const std::vector<std::string> heads{
        "POST /open/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: "
        "chunked\r\n\r\n",
        "POST /open/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: "
        "5\r\n\r\n",
        "POST /open/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST /open/x HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
        "POST /open/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /open/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "GET /open/x HTTP/1.1\r\n\r\n",
        "GET /open/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GARBAGE\r\n\r\n",
    };
    for (const auto& head : heads) {
        INFO(head);
        http_client c(proxy.port());
        c.send_raw(head);
        const auto r = c.read_response();
        CHECK(r.status == 400);
        CHECK(nlohmann::json::parse(r.body)["error"] == "bad_request");
        CHECK_FALSE(r.keep_alive);
        CHECK(c.closed_by_peer());
    }
    CHECK(up.heads_received() == 0);
}

TEST_CASE("upstream failures: 502 refused, 502 closed, 504 slow", "[it][proxy]") {
    temp_dir dir;
    SECTION("connection refused") {
        proxy_process proxy(dir, basic_config("http://127.0.0.1:" + std::to_string(closed_port())));
        http_client c(proxy.port());
        const auto r = c.get("/open/x");
        CHECK(r.status == 502);
        CHECK(body_json(r)["error"] == "upstream_unavailable");
        CHECK(r.header("Content-Type") == "application/json");
        CHECK(!r.header("X-Request-Id").empty());
    }
    SECTION("closed without a response") {
        recording_upstream up;
        upstream_behaviour b;
        b.close_without_response = true;
        up.set_behaviour(b);
        proxy_process proxy(dir, basic_config(up.url()));
        http_client c(proxy.port());
        CHECK(c.get("/open/x").status == 502);
    }
    SECTION("no response head within upstream.timeout") {
        recording_upstream up;
        upstream_behaviour b;
        b.delay = 3s;
        up.set_behaviour(b);
        const std::string yaml =
            "listen: \"127.0.0.1:0\"\nupstream:\n  url: \"" + up.url() +
            "\"\n  timeout: 300ms\nclerk:\n  api_url: \"http://127.0.0.1:1\"\n"
            "  machine_secret_key: \"ak_test\"\nadmin:\n  listen: \"\"\nroutes:\n"
            "  - path: /open/*\n    auth: none\n";
        proxy_process proxy(dir, yaml);
        http_client c(proxy.port());
        const auto start = std::chrono::steady_clock::now();
        const auto r = c.get("/open/slow");
        CHECK(r.status == 504);
        CHECK(body_json(r)["error"] == "upstream_timeout");
        CHECK(std::chrono::steady_clock::now() - start < 2500ms);
    }
}

TEST_CASE("keep-alive: one upstream connection serves many requests", "[it][proxy]") {
    // Each event loop keeps its own pool (a connection never changes thread), and SO_REUSEPORT
    // may hand the second client connection to another loop: one loop makes the count exact.
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url(), {}, "threads: 1\n"));
    {
        http_client c(proxy.port());
        for (int i = 0; i < 10; ++i) {
            const auto r = c.get("/open/" + std::to_string(i));
            REQUIRE(r.status == 200);
            CHECK(r.keep_alive);
        }
    }
    http_client c2(proxy.port());
    CHECK(c2.get("/open/again").status == 200);
    CHECK(up.connections_accepted() == 1);
}

TEST_CASE("keep-alive with several event loops: at most one upstream connection per loop",
          "[it][proxy]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url(), {}, "threads: 3\n"));
    for (int round = 0; round < 10; ++round) {
        http_client c(proxy.port());  // a new connection: any of the 3 loops may take it
        for (int i = 0; i < 5; ++i) {
            REQUIRE(c.get("/open/" + std::to_string(i)).status == 200);
        }
    }
    CHECK(up.requests().size() == 50);
    CHECK(up.connections_accepted() >= 1);
    CHECK(up.connections_accepted() <= 3);
}

TEST_CASE("a pooled connection the upstream closed is replaced transparently", "[it][proxy]") {
    recording_upstream up;
    upstream_behaviour b;
    b.connection_close = true;  // every response closes the upstream connection
    up.set_behaviour(b);
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    for (int i = 0; i < 3; ++i) {
        const auto r = c.get("/open/x");
        CHECK(r.status == 200);
        CHECK(r.keep_alive);  // the client connection is unaffected
        CHECK(r.count("Connection") == 0);
    }
    CHECK(up.connections_accepted() == 3);
}

TEST_CASE("pipelined requests are answered in order", "[it][proxy]") {
    recording_upstream up;
    up.set_handler([](const recorded_request& r) {
        upstream_behaviour b;
        b.body = "echo " + r.target;
        return b;
    });
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    std::string burst;
    for (int i = 0; i < 5; ++i) {
        burst += "GET /open/p" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n";
    }
    burst += "GET /private HTTP/1.1\r\nHost: a\r\n\r\n";  // a refusal in the middle
    burst += "GET /open/last HTTP/1.1\r\nHost: a\r\n\r\n";
    c.send_raw(burst);
    for (int i = 0; i < 5; ++i) {
        const auto r = c.read_response();
        CHECK(r.status == 200);
        CHECK(r.body == "echo /open/p" + std::to_string(i));
    }
    CHECK(c.read_response().status == 401);
    CHECK(c.read_response().body == "echo /open/last");
}

TEST_CASE("HEAD, 204 and 304 carry no body", "[it][proxy]") {
    recording_upstream up;
    up.set_handler([](const recorded_request& r) {
        upstream_behaviour b;
        if (r.target == "/open/204") {
            b.status = 204;
            b.body.clear();
        } else if (r.target == "/open/304") {
            b.status = 304;
            b.body.clear();
        } else {
            b.body = "twelve bytes";
        }
        return b;
    });
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    const auto h = c.request("HEAD", "/open/x");
    CHECK(h.status == 200);
    CHECK(h.header("Content-Length") == "12");
    CHECK(h.body.empty());
    CHECK(c.get("/open/204").status == 204);
    CHECK(c.get("/open/304").status == 304);
    CHECK(c.get("/open/x").body == "twelve bytes");  // the connection is still in sync
}

TEST_CASE("client Connection: close is honoured", "[it][proxy]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    const auto r = c.get("/open/x", {{"Connection", "close"}});
    CHECK(r.status == 200);
    CHECK_FALSE(r.keep_alive);
    CHECK(c.closed_by_peer());
}

TEST_CASE("request bodies: Content-Length and chunked are forwarded", "[it][proxy]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    const auto r = c.request("POST", "/open/post", {{"Content-Type", "text/plain"}}, "hello body");
    CHECK(r.status == 200);
    std::string sha;
    const auto ch = c.upload("PUT", "/open/chunked", 100000, true, {}, &sha);
    CHECK(ch.status == 200);
    REQUIRE(up.wait_for_requests(2));
    const auto seen = up.requests();
    CHECK(seen[0].body_size == 10);
    CHECK(seen[0].body_sha256 == sha256_hex("hello body"));
    CHECK(seen[0].header("Content-Length") == "10");
    CHECK(seen[1].chunked);
    CHECK(seen[1].body_size == 100000);
    CHECK(seen[1].body_sha256 == sha);
}

TEST_CASE("Expect: 100-continue is forwarded and the interim 100 relayed", "[it][proxy]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    c.send_raw(
        "POST /open/expect HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: "
        "100-continue\r\n\r\n");
    // The interim response arrives before the body is sent.
    const auto interim = c.read_interim();
    CHECK(interim.find("HTTP/1.1 100 Continue") == 0);
    c.send_raw("hello");
    const auto r = c.read_response();
    CHECK(r.status == 200);
    REQUIRE(up.wait_for_requests(1));
    CHECK(up.requests()[0].body_size == 5);
    CHECK(up.requests()[0].header("Expect") == "100-continue");
}
