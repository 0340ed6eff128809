// Socket-free tests of the session (proxy/http/session.cpp) and the relay (proxy/upstream/
// relay.cpp, response_relay.cpp): the real code paths, driven over in-memory streams (Beast's
// test stream, proxy/net/any_stream.hpp) on one io_context, with a scripted upstream and a table
// authenticator. What needs real time or real sockets (timeouts, TLS, HTTP/2 preface over TCP)
// is covered by the integration tests, which run the binary.
#include "proxy/http/session.hpp"

#include "session_relay_fixtures.hpp"

#include <catch2/catch.hpp>

using namespace session_relay;  // NOLINT(google-build-using-namespace)

TEST_CASE("session: a request goes upstream with the verified identity, the client's removed",
          "[session]") {
    harness h;
    h.acts = {upstream_act::answer};
    h.connect_client();
    h.send(
        "GET /api/items?x=1 HTTP/1.1\r\nHost: svc\r\nAuthorization: Bearer good\r\n"
        "X-Clerk-Subject: mch_forged\r\nX-Clerk-Scopes: admin\r\n\r\n");

    REQUIRE(h.seen.size() == 1);
    const auto& up = h.seen[0];
    CHECK(up.method == "GET");
    CHECK(up.target == "/api/items?x=1");
    CHECK(up.fields["X-Clerk-Subject"] == "mch_test");
    CHECK(up.fields["X-Clerk-Machine-Id"] == "mch_test");
    CHECK(up.fields["X-Clerk-Scopes"] == "read");
    CHECK(up.fields["X-Clerk-Token-Id"] == "mt_test");
    CHECK(up.fields.count(http::field::authorization) == 0);  // not forwarded by default
    CHECK(up.fields["X-Forwarded-For"] == "192.0.2.7");
    CHECK_FALSE(up.fields["X-Request-Id"].empty());

    const auto res = h.one_response();
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "seen GET /api/items?x=1");
    CHECK(res["X-Request-Id"] == up.fields["X-Request-Id"]);
    CHECK(res.keep_alive());
    CHECK_FALSE(h.session_done);  // kept alive for the next request
}

TEST_CASE("session: a token that needs an awaited verification is forwarded the same way",
          "[session]") {
    harness h;
    h.acts = {upstream_act::answer};
    h.connect_client();
    h.send("GET /a HTTP/1.1\r\nHost: svc\r\nAuthorization: Bearer later-good\r\n\r\n");
    CHECK(h.auth().awaited == 1);
    REQUIRE(h.seen.size() == 1);
    CHECK(h.seen[0].fields["X-Clerk-Subject"] == "mch_test");
    const auto res = h.one_response();
    CHECK(res.result_int() == 200);
}

TEST_CASE("session: refusals are answered by the proxy and never reach the upstream", "[session]") {
    harness h;
    h.acts = {upstream_act::answer};
    h.connect_client();
    SECTION("no token: 401 with WWW-Authenticate, and the connection stays usable") {
        h.send("GET /a HTTP/1.1\r\nHost: svc\r\n\r\n");
        auto res = h.responses();
        REQUIRE(res.size() == 1);
        CHECK(res[0].result_int() == 401);
        CHECK_FALSE(res[0][http::field::www_authenticate].empty());
        CHECK(res[0].keep_alive());
        h.send(get("/b"));
        res = h.responses();
        REQUIRE(res.size() == 1);
        CHECK(res[0].result_int() == 200);
        REQUIRE(h.seen.size() == 1);
        CHECK(h.seen[0].target == "/b");
    }
    SECTION("an unknown token: 401 invalid_token") {
        h.send("GET /a HTTP/1.1\r\nHost: svc\r\nAuthorization: Bearer nope\r\n\r\n");
        const auto res = h.one_response();
        CHECK(res.result_int() == 401);
        CHECK(reason_of(res) == "not_found");
        CHECK(h.seen.empty());
        CHECK(h.connects == 0);
    }
    SECTION("a path that does not normalize: 400, nothing upstream") {
        h.send(get("/a/%2Fetc"));
        const auto res = h.one_response();
        CHECK(res.result_int() == 400);
        CHECK(h.connects == 0);
    }
}

TEST_CASE("session: a malformed request is answered 400 and the connection closed", "[session]") {
    harness h;
    h.connect_client();
    h.send("THIS IS NOT HTTP\r\n\r\n");
    const auto res = h.one_response();
    CHECK(res.result_int() == 400);
    CHECK(reason_of(res) == "malformed_request");
    CHECK_FALSE(res.keep_alive());
    CHECK(h.client_sees_eof());  // half-closed: the proxy lingers for what the client sends
    h.close_client();
    CHECK(h.session_done);
    CHECK(h.connects == 0);
}

TEST_CASE("session: keep-alive reuses the client and the upstream connection", "[session]") {
    harness h;
    h.acts = {upstream_act::answer};
    h.connect_client();
    for (int i = 0; i < 3; ++i) {
        h.send(get("/n" + std::to_string(i)));
        const auto res = h.one_response();
        CHECK(res.body() == "seen GET /n" + std::to_string(i));
    }
    CHECK(h.connects == 1);  // one upstream connection, pooled between requests
    CHECK(h.seen.size() == 3);
    CHECK(h.idle_upstreams() == 1);
    CHECK_FALSE(h.session_done);
}

TEST_CASE("session: pipelined requests are answered in order", "[session]") {
    harness h;
    h.acts = {upstream_act::answer};
    h.connect_client();
    h.send(get("/first") + get("/second") + "GET /third HTTP/1.1\r\nHost: svc\r\n\r\n" +
           get("/fourth"));
    const auto res = h.responses();
    REQUIRE(res.size() == 4);
    CHECK(res[0].body() == "seen GET /first");
    CHECK(res[1].body() == "seen GET /second");
    CHECK(res[2].result_int() == 401);  // refused in its turn, the next still served
    CHECK(res[3].body() == "seen GET /fourth");
    CHECK(h.seen.size() == 3);
    CHECK(h.connects == 1);
}

TEST_CASE("session: the connection ends when the client asks for it", "[session]") {
    harness h;
    h.acts = {upstream_act::answer};
    h.connect_client();
    SECTION("Connection: close") {
        h.send(get("/a", "Connection: close\r\n") + get("/never"));
        const auto res = h.one_response();
        CHECK_FALSE(res.keep_alive());
        CHECK(res[http::field::connection] == "close");
        CHECK(h.session_done);
        CHECK(h.seen.size() == 1);
    }
    SECTION("HTTP/1.0 without keep-alive") {
        h.send("GET /old HTTP/1.0\r\nHost: svc\r\nAuthorization: Bearer good\r\n\r\n");
        const auto res = h.one_response();
        CHECK(res.version() == 10);
        CHECK(res.body() == "seen GET /old");
        CHECK(h.session_done);
    }
    SECTION("HTTP/1.0 with keep-alive stays open") {
        h.send(
            "GET /old HTTP/1.0\r\nHost: svc\r\nConnection: keep-alive\r\n"
            "Authorization: Bearer good\r\n\r\n");
        const auto res = h.one_response();
        CHECK(res.version() == 10);
        CHECK(res.keep_alive());
        CHECK_FALSE(h.session_done);
    }
}

TEST_CASE("relay: a request body is streamed upstream with its framing", "[relay]") {
    harness h;
    h.acts = {upstream_act::answer};
    h.connect_client();
    SECTION("Content-Length") {
        h.send(
            "POST /upload HTTP/1.1\r\nHost: svc\r\nAuthorization: Bearer good\r\n"
            "Content-Length: 11\r\n\r\nhello world");
        REQUIRE(h.seen.size() == 1);
        CHECK(h.seen[0].body == "hello world");
        CHECK(h.seen[0].fields[http::field::content_length] == "11");
    }
    SECTION("chunked") {
        h.send(
            "POST /upload HTTP/1.1\r\nHost: svc\r\nAuthorization: Bearer good\r\n"
            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        REQUIRE(h.seen.size() == 1);
        CHECK(h.seen[0].body == "hello world");
    }
    const auto res = h.one_response();
    CHECK(res.result_int() == 200);
    CHECK(res.keep_alive());
}

TEST_CASE("relay: early upstream errors are answered 502 with the reason", "[relay]") {
    harness h;
    h.connect_client();
    SECTION("connect refused") {
        h.send(get("/a"));
        const auto res = h.one_response();
        CHECK(res.result_int() == 502);
        CHECK(reason_of(res) == "connect_failed");
        CHECK(h.connects == 1);
    }
    SECTION("a new connection closed before the answer: not retried") {
        h.acts = {upstream_act::close_after_request, upstream_act::answer};
        h.send(get("/a"));
        const auto res = h.one_response();
        CHECK(res.result_int() == 502);
        CHECK(reason_of(res) == "upstream_closed");
        CHECK(h.connects == 1);
    }
    SECTION("an answer that is not HTTP") {
        h.acts = {upstream_act::garbage};
        h.send(get("/a"));
        const auto res = h.one_response();
        CHECK(res.result_int() == 502);
        CHECK(reason_of(res) == "invalid_response");
    }
    // After a 502 the client connection goes on.
    h.acts = {upstream_act::answer};
    h.send(get("/after"));
    const auto res = h.one_response();
    CHECK(res.body() == "seen GET /after");
}

TEST_CASE("relay: an upstream that closes after its answer is not pooled", "[relay]") {
    harness h;
    h.acts = {upstream_act::answer_then_close, upstream_act::answer};
    h.connect_client();
    h.send(get("/a"));
    h.send(get("/b"));
    const auto res = h.responses();
    REQUIRE(res.size() == 2);
    CHECK(res[0].keep_alive());  // the client's connection is not the upstream's
    CHECK(res[1].body() == "seen GET /b");
    CHECK(h.connects == 2);
}

TEST_CASE("relay: the one-retry rule", "[relay]") {
    harness h;
    h.connect_client();
    SECTION("a pooled connection closed before answering: a GET is sent again, once") {
        h.pool_idle(upstream_act::close_after_request);
        h.acts = {upstream_act::answer};
        h.send(get("/idem"));
        const auto res = h.one_response();
        CHECK(res.result_int() == 200);
        CHECK(h.connects == 1);
        CHECK(h.seen.size() == 2);  // the closed one saw it, then the fresh one
    }
    SECTION("a pooled connection the upstream closed while idle: retried") {
        h.pool_idle(upstream_act::close_at_once);
        h.acts = {upstream_act::answer};
        h.send(get("/idem"));
        const auto res = h.one_response();
        CHECK(res.result_int() == 200);
        CHECK(h.connects == 1);
    }
    SECTION("the retry fails too: 502, no third attempt") {
        h.pool_idle(upstream_act::close_after_request);
        h.acts = {upstream_act::close_after_request, upstream_act::answer};
        h.send(get("/idem"));
        const auto res = h.one_response();
        CHECK(res.result_int() == 502);
        CHECK(reason_of(res) == "upstream_closed");
        CHECK(h.connects == 1);
    }
    SECTION("a POST with a body is never sent twice") {
        h.pool_idle(upstream_act::close_after_request);
        h.acts = {upstream_act::answer};
        h.send(
            "POST /pay HTTP/1.1\r\nHost: svc\r\nAuthorization: Bearer good\r\n"
            "Content-Length: 3\r\n\r\nabc");
        const auto res = h.one_response();
        CHECK(res.result_int() == 502);
        CHECK(reason_of(res) == "upstream_closed");
        CHECK(h.connects == 0);
        CHECK(h.seen.size() == 1);
    }
    SECTION("a POST without a body is not retried either (not idempotent)") {
        h.pool_idle(upstream_act::close_after_request);
        h.acts = {upstream_act::answer};
        h.send(
            "POST /act HTTP/1.1\r\nHost: svc\r\nAuthorization: Bearer good\r\n"
            "Content-Length: 0\r\n\r\n");
        const auto res = h.one_response();
        CHECK(res.result_int() == 502);
        CHECK(h.connects == 0);
    }
}

TEST_CASE("session: the keep-alive rule closes where the next request cannot be trusted",
          "[session]") {
    harness h;
    h.acts = {upstream_act::answer};
    h.connect_client();
    SECTION("an upgrade the upstream answered without switching protocols") {
        h.send(get("/ws",
                   "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n"));
        const auto res = h.one_response();
        CHECK(res.result_int() == 200);
        CHECK_FALSE(res.keep_alive());  // the client may already be sending frames
        CHECK(h.session_done);
    }
    SECTION("a request body the client had not finished: refused and closed") {
        h.send("POST /big HTTP/1.1\r\nHost: svc\r\nContent-Length: 100\r\n\r\npartial");
        const auto res = h.one_response();
        CHECK(res.result_int() == 401);  // no token; its body was never read
        CHECK_FALSE(res.keep_alive());
        CHECK(h.connects == 0);
    }
    SECTION("a drain closes an idle connection") {
        h.send(get("/a"));
        CHECK(h.responses().size() == 1);
        CHECK_FALSE(h.session_done);
        h.drain();
        CHECK(h.session_done);
    }
}
