// Security: request smuggling (CL.TE, TE.CL, bad framing headers, obs-fold, bare LF, pipelining).
#include "harness.hpp"
#include "security_fixtures.hpp"

#include <catch2/catch.hpp>

#include <sstream>

using namespace clerk::it;
using namespace clerk::it::security_fixtures;

// --- request smuggling

TEST_CASE("security: CL.TE smuggling is refused and the smuggled request never reaches upstream",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    const std::string body = std::string("0\r\n\r\n") + smuggled;
    http_client c(proxy.port(), short_timeout());
    check_refused_and_closed(
        c, "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\nTransfer-Encoding: chunked\r\n\r\n" + body);
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: TE.CL smuggling is refused and the smuggled request never reaches upstream",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    const std::string chunk = std::string(smuggled);
    std::ostringstream size;
    size << std::hex << chunk.size();
    const std::string body = size.str() + "\r\n" + chunk + "\r\n0\r\n\r\n";
    // Transfer-Encoding first, then Content-Length; and obfuscated Transfer-Encoding spellings.
    const std::vector<std::string> te_lines{
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding:\tchunked\r\n",
        "transfer-encoding: CHUNKED\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        "Transfer-Encoding: xchunked\r\n",
    };
    for (const auto& te : te_lines) {
        INFO(te);
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(
            c, "POST /public/x HTTP/1.1\r\nHost: a\r\n" + te + "Content-Length: 4\r\n\r\n" + body);
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: differing duplicate Content-Length is refused", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    const std::vector<std::string> cls{
        "Content-Length: 5\r\nContent-Length: 47\r\n",
        "Content-Length: 47\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 47\r\n",
        "Content-Length: 5\r\ncontent-length: 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: 5 5\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 99999999999999999999999\r\n",
    };
    for (const auto& cl : cls) {
        INFO(cl);
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(
            c, "POST /public/x HTTP/1.1\r\nHost: a\r\n" + cl + "\r\nhello" + smuggled);
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

// RFC 9112 §6.3 (5) / RFC 9110 §8.6: a recipient may accept a Content-Length list or repeated
// field whose values are all the same, as one length. docs/reference.md §5 refuses only an invalid
// one.
TEST_CASE("security: agreeing duplicate Content-Length is forwarded as exactly one",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    http_client c(proxy.port(), short_timeout());
    c.send_raw(
        "POST /public/dup HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: "
        "5\r\n\r\nhello");
    const auto r = c.read_response();
    CHECK(r.status == 200);
    CHECK(r.keep_alive);
    c.send_raw("POST /public/list HTTP/1.1\r\nHost: a\r\nContent-Length: 6, 6\r\n\r\nhello!");
    CHECK(c.read_response().status == 200);
    CHECK(c.get("/public/after").status == 200);  // the connection is still in sync
    REQUIRE(up.wait_for_requests(3));
    const auto seen = up.requests();
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].target == "/public/dup");
    CHECK(seen[0].count("Content-Length") == 1);
    CHECK(seen[0].header("Content-Length") == "5");
    CHECK(seen[0].body_size == 5);
    CHECK(seen[0].body_sha256 == sha256_hex("hello"));
    CHECK(seen[1].count("Content-Length") == 1);
    CHECK(seen[1].header("Content-Length") == "6");
    CHECK(seen[1].body_sha256 == sha256_hex("hello!"));
    CHECK(seen[2].target == "/public/after");
    CHECK(seen[2].body_size == 0);
}

// RFC 9112 §5.2: obs-fold is either refused with 400 or replaced by SP before forwarding. The
// proxy (Beast) replaces it: the upstream must see one header per folded line, never a new line.
TEST_CASE("security: obs-fold is unfolded into one value and never splits a header",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    http_client c(proxy.port(), short_timeout());
    c.send_raw(
        "GET /public/fold HTTP/1.1\r\nHost: a\r\nX-Note: first\r\n second\r\n"
        "X-Innocent: a\r\n X-Clerk-Subject: mch_folded\r\n"
        "X-Clerk-Scopes: mch_spoof\r\n\tcontinued\r\n\r\n");
    const auto r = c.read_response();
    CHECK(r.status == 200);
    REQUIRE(up.wait_for_requests(1));
    const auto seen = up.requests().at(0);
    CHECK(seen.target == "/public/fold");
    CHECK(seen.count("X-Note") == 1);
    CHECK(seen.header("X-Note") == "first second");
    CHECK(seen.count("X-Innocent") == 1);
    CHECK(seen.header("X-Innocent") == "a X-Clerk-Subject: mch_folded");
    CHECK(identity_like(seen).empty());

    // A folded framing header cannot become a valid one.
    http_client f(proxy.port(), short_timeout());
    check_refused_and_closed(
        f, "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n 0\r\n\r\n0123456789");
    http_client t(proxy.port(), short_timeout());
    check_refused_and_closed(t,
                             "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                             " , identity\r\n\r\n0\r\n\r\n");
    CHECK(up.heads_received() == 1);
}

TEST_CASE("security: bare LF line endings are never forwarded", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir,
                        sec_config(up.url(), {}, "mch_admin", "limits:\n  header_timeout: 1s\n"));
    // A bare LF inside the head: the next "line" is part of a field value, which is refused.
    for (const std::string head :
         {"GET /public/x HTTP/1.1\r\nHost: a\nX-Clerk-Subject: spoof\r\n\r\n",
          "GET /public/x HTTP/1.1\r\nX-A: b\nHost: c\r\n\r\n",
          "POST /public/x HTTP/1.1\r\nHost: a\r\nX-A: 1\nContent-Length: 5\r\n\r\nhello"}) {
        INFO(head);
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(c, head);
    }
    // Only bare LFs: refused as malformed at once (not left to header_timeout), and the second
    // request behind it is never read.
    http_client lf(proxy.port(), short_timeout());
    check_refused_and_closed(
        lf, "GET /public/x HTTP/1.1\nHost: a\n\nGET /public/y HTTP/1.1\nHost: a\n\n");
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: Transfer-Encoding chunked then identity is refused", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    for (const std::string te : {"chunked, identity", "identity, chunked", "chunked, chunked",
                                 "gzip, chunked", "identity", "chunked;q=1"}) {
        INFO(te);
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(c, "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " +
                                        te + "\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + smuggled);
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: pipelined request after a refused smuggling attempt is never forwarded",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    // A good request first, then the attack and the smuggled request in one write: the good one
    // is forwarded, the attack refused, the connection closed, and nothing after it is read.
    http_client c(proxy.port(), short_timeout());
    const std::string attack = std::string("GET /public/first HTTP/1.1\r\nHost: a\r\n\r\n") +
                               "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
                               smuggled + smuggled;
    c.send_raw(attack);
    CHECK(c.read_response().status == 200);
    const auto refused = c.read_response();
    CHECK(refused.status == 400);
    CHECK_FALSE(refused.keep_alive);
    const std::string rest = c.read_until_close();
    CHECK(rest.empty());  // no response for the smuggled requests
    REQUIRE(up.wait_for_requests(1));
    http_client s(proxy.port(), short_timeout());
    CHECK(s.get("/public/sentinel").status == 200);
    REQUIRE(up.wait_for_requests(2));
    const auto seen = up.requests();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].target == "/public/first");
    CHECK(seen[1].target == "/public/sentinel");
    CHECK(up.heads_received() == 2);
}
