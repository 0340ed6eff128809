// Security: path confusion (encoded '/', dot segments, ';' parameters) and non-origin-form targets.
#include "harness.hpp"
#include "security_fixtures.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace clerk::it;
using namespace clerk::it::security_fixtures;

// --- path confusion

TEST_CASE("security: path confusion is refused or forwarded as exactly the path the rules saw",
          "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir, env.config());
    const std::string admin_token = env.knobs.mint(env.c_id)["token"];       // scopes [a, b]
    const std::string plain_token = env.knobs.mint(env.lonely_id)["token"];  // no scopes

    struct row {
        std::string target;
        std::string token;  // "admin", "plain" or ""
        int status;
        std::string forwarded;  // the exact upstream target when 200, else ""
        std::string reason;     // the 400 reason, when status is 400
    };
    const std::vector<row> rows{
        // encoded '/' and '\'
        {"/public/..%2fadmin/x", "", 400, "", "encoded_slash"},
        {"/public/..%2Fadmin/x", "admin", 400, "", "encoded_slash"},
        {"/public/..%5cadmin/x", "", 400, "", "encoded_backslash"},
        {"/public/..%5Cadmin/x", "", 400, "", "encoded_backslash"},
        {"/public/..\\admin/x", "", 400, "", "encoded_backslash"},
        {"/public\\..\\admin", "", 400, "", "encoded_backslash"},
        // encoded dot segments resolve before matching: /admin/* applies
        {"/public/%2e%2e/admin/x", "", 401, "", ""},
        {"/public/%2E%2E/admin/x", "plain", 403, "", ""},
        {"/public/.%2e/admin/x", "admin", 200, "/admin/x", ""},
        {"/public/%2e%2e/%2e%2e/admin", "", 400, "", "escapes_root"},
        {"/%61dmin/x", "plain", 403, "", ""},
        {"//admin//x", "", 401, "", ""},
        {"/public/./../admin/x?q=%2e%2e", "admin", 200, "/admin/x?q=%2e%2e", ""},
        // ';' path parameters: servlet containers read "..;" as ".." and "admin;x=1" as "admin"
        {"/public/..;/admin/x", "", 400, "", "ambiguous_path"},
        {"/public/..;/admin/x", "admin", 400, "", "ambiguous_path"},
        {"/public/.;/x", "", 200, "/public/.;/x", ""},
        {"/admin;x=1/x", "plain", 400, "", "ambiguous_path"},
        {"/admin;x=1", "plain", 400, "", "ambiguous_path"},
        {"/public;x=1/y", "", 400, "", "ambiguous_path"},
        {"/admin/x;jsessionid=1", "plain", 403, "", ""},
        {"/admin/x;jsessionid=1", "admin", 200, "/admin/x;jsessionid=1", ""},
        {"/public/x;v=1", "", 200, "/public/x;v=1", ""},
        {"/api/x;v=1", "plain", 200, "/api/x;v=1", ""},
        // overlong UTF-8 stays escaped: never decoded to '.' or '/'
        {"/public/%c0%ae%c0%ae/admin/x", "", 200, "/public/%C0%AE%C0%AE/admin/x", ""},
        {"/public/..%c0%afadmin/x", "", 200, "/public/..%C0%AFadmin/x", ""},
        {"/public/%e0%80%ae%e0%80%ae/admin", "", 200, "/public/%E0%80%AE%E0%80%AE/admin", ""},
        // double encoding is decoded once only
        {"/public/%252e%252e/admin/x", "", 200, "/public/%252e%252e/admin/x", ""},
        {"/public/..%252fadmin/x", "", 200, "/public/..%252fadmin/x", ""},
        {"/public/%25%32%65%25%32%65/admin", "", 200, "/public/%252e%252e/admin", ""},
    };
    http_client c(proxy.port(), short_timeout());
    std::size_t forwarded = 0;
    for (const auto& r : rows) {
        INFO(r.target << " token=" << r.token);
        http_client::header_list h;
        if (r.token == "admin") {
            h.emplace_back("Authorization", "Bearer " + admin_token);
        } else if (r.token == "plain") {
            h.emplace_back("Authorization", "Bearer " + plain_token);
        }
        // Raw bytes: the client must not touch the target.
        std::string req = "GET " + r.target + " HTTP/1.1\r\nHost: svc\r\n";
        for (const auto& [k, v] : h) {
            req += k + ": " + v + "\r\n";
        }
        http_client one(proxy.port(), short_timeout());
        one.send_raw(req + "\r\n");
        const auto res = one.read_response();
        INFO(res.body);
        CHECK(res.status == r.status);
        if (r.status == 400) {
            CHECK(body_json(res)["error"] == "bad_request");
            CHECK(body_json(res)["reason"] == r.reason);
        }
        const auto seen = env.up.requests();
        if (r.status == 200) {
            ++forwarded;
            REQUIRE(seen.size() == forwarded);
            CHECK(seen.back().target == r.forwarded);
        }
        CHECK(seen.size() == forwarded);
    }
    CHECK(env.up.heads_received() == forwarded);
}

TEST_CASE("security: absolute-form authority-form and asterisk-form targets are refused",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    for (const std::string req :
         {"GET http://evil/admin HTTP/1.1\r\nHost: evil\r\n\r\n",
          "GET http://evil/public/x HTTP/1.1\r\nHost: a\r\n\r\n",
          "GET https://a/public/x HTTP/1.1\r\nHost: a\r\n\r\n",
          "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
          "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
          "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "GET public/x HTTP/1.1\r\nHost: a\r\n\r\n"}) {
        INFO(req);
        const auto r = raw_exchange(proxy.port(), req);
        CHECK(r.status == 400);
        CHECK(body_json(r)["error"] == "bad_request");
        CHECK(body_json(r)["reason"] == "not_origin_form");
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);

    // A refused CONNECT opens no tunnel: the bytes after it are parsed as the next HTTP request
    // and go through every rule like any other (here: a bare /admin request without a token).
    http_client c(proxy.port(), short_timeout());
    c.send_raw(
        "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n"
        "GET /admin/x HTTP/1.1\r\nHost: a\r\n\r\nGET /public/after-connect HTTP/1.1\r\nHost: "
        "a\r\n\r\n");
    CHECK(c.read_response().status == 400);
    const auto admin = c.read_response();
    CHECK(admin.status == 401);
    CHECK(body_json(admin)["error"] == "missing_token");
    CHECK(c.read_response().status == 200);
    REQUIRE(up.wait_for_requests(2));
    CHECK(up.requests().size() == 2);
    CHECK(up.requests().at(1).target == "/public/after-connect");
}
