#include "proxy/http/forward_auth.hpp"
#include "fakes/principal_edit.hpp"

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using clerk::testing::edit;

namespace http = boost::beast::http;
using clerk::proxy::append_check_allowed;
using clerk::proxy::original_request_of;

namespace {

clerk::proxy::header_fields make_fields(
    std::initializer_list<std::pair<std::string_view, std::string_view>> kv) {
    clerk::proxy::header_fields f;
    for (const auto& [k, v] : kv) {
        f.insert(k, v);
    }
    return f;
}

/// Parses `head` with Beast's response parser (the oracle for well-formed framing).
http::response<http::string_body> parse_response(const std::string& head) {
    http::response_parser<http::string_body> p;
    boost::system::error_code ec;
    const auto n = p.put(boost::asio::buffer(head), ec);
    INFO(ec.message());
    REQUIRE_FALSE(ec);
    REQUIRE(n == head.size());
    REQUIRE(p.is_done());
    return p.release();
}

}  // namespace

TEST_CASE("forward-auth: the original request comes from the gateway's headers", "[forward_auth]") {
    SECTION("X-Forwarded-* (Traefik, Caddy) wins over X-Original-* and the request line") {
        const auto h = make_fields({{"X-Original-URI", "/nginx"},
                                    {"X-Forwarded-Uri", "/api/x?a=1"},
                                    {"X-Forwarded-Method", "DELETE"}});
        const auto r = original_request_of(h, "GET", "/check");
        CHECK(r.reason.empty());
        CHECK(r.method == "DELETE");
        CHECK(r.target == "/api/x?a=1");
    }
    SECTION("X-Original-* (nginx auth_request)") {
        const auto h = make_fields({{"X-Original-URI", "/api/y"}, {"X-Original-Method", "POST"}});
        const auto r = original_request_of(h, "GET", "/check");
        CHECK(r.reason.empty());
        CHECK(r.method == "POST");
        CHECK(r.target == "/api/y");
    }
    SECTION("the family is chosen by its URI header; a lone method header does not count") {
        const auto h = make_fields({{"X-Forwarded-Method", "PUT"}, {"X-Original-URI", "/o"}});
        const auto r = original_request_of(h, "PATCH", "/check");
        CHECK(r.reason.empty());
        CHECK(r.method == "PATCH");  // the X-Original family has no method: the check's own
        CHECK(r.target == "/o");
    }
    SECTION("X-Original-URL (ingress-nginx): its path and query") {
        const auto h = make_fields({{"X-Original-URL", "https://svc.example:8443/api/v?x=1"},
                                    {"X-Original-Method", "PUT"}});
        const auto r = original_request_of(h, "GET", "/check");
        CHECK(r.reason.empty());
        CHECK(r.method == "PUT");
        CHECK(r.target == "/api/v?x=1");
        // X-Original-URI wins; a URL without a path is refused.
        CHECK(original_request_of(
                  make_fields({{"X-Original-URL", "http://h/a"}, {"X-Original-URI", "/b"}}), "GET",
                  "/")
                  .target == "/b");
        CHECK(
            original_request_of(make_fields({{"X-Original-URL", "http://h"}}), "GET", "/").reason ==
            "bad_original_url");
        CHECK(original_request_of(make_fields({{"X-Original-URL", "/rel"}}), "GET", "/").reason ==
              "bad_original_url");
    }
    SECTION("no family: the request line (Envoy ext_authz)") {
        const auto r = original_request_of(clerk::proxy::header_fields{}, "GET", "/api/z?q");
        CHECK(r.reason.empty());
        CHECK(r.method == "GET");
        CHECK(r.target == "/api/z?q");
    }
    SECTION("repeated, empty or malformed values are refused") {
        CHECK(original_request_of(
                  make_fields({{"X-Forwarded-Uri", "/a"}, {"X-Forwarded-Uri", "/b"}}), "GET", "/")
                  .reason == "repeated_original_uri");
        CHECK(original_request_of(make_fields({{"X-Original-URI", ""}}), "GET", "/").reason ==
              "empty_original_uri");
        CHECK(original_request_of(make_fields({{"X-Original-URI", "/a"},
                                               {"X-Original-Method", "GET"},
                                               {"X-Original-Method", "POST"}}),
                                  "GET", "/")
                  .reason == "repeated_original_method");
        CHECK(original_request_of(
                  make_fields({{"X-Forwarded-Uri", "/a"}, {"X-Forwarded-Method", "GE T"}}), "GET",
                  "/")
                  .reason == "bad_original_method");
    }
}

TEST_CASE("forward-auth: the positive answer carries the identity and nothing else",
          "[forward_auth]") {
    const clerk::core::header_rules rules{clerk::core::identity_header_names{}};
    clerk::core::identity id;
    edit(id).subject = "mch_abc";
    id.token_id = "mt_123";
    edit(id).scopes = {"read", "write"};
    std::string scratch;

    SECTION("HTTP/1.1 kept alive, with an identity") {
        std::string out;
        append_check_allowed(out, 11, true, "rid1", rules, &id, scratch);
        const auto res = parse_response(out);
        CHECK(res.result_int() == 200);
        CHECK(res.version() == 11);
        CHECK(res.keep_alive());
        CHECK(res[http::field::content_length] == "0");
        CHECK(res[http::field::cache_control] == "no-store");
        CHECK(res["X-Request-Id"] == "rid1");
        CHECK(res["X-Clerk-Subject"] == "mch_abc");
        CHECK(res["X-Clerk-Machine-Id"] == "mch_abc");
        CHECK(res["X-Clerk-Token-Id"] == "mt_123");
        CHECK(res["X-Clerk-Token-Type"] == "m2m_token");
        CHECK(res["X-Clerk-Scopes"] == "read,write");
        CHECK(res.count("X-Clerk-Claims") == 1);  // no claims: present and empty
        CHECK(res["X-Clerk-Claims"].empty());
        CHECK(res.count("X-Clerk-Subject") == 1);
        CHECK(res.body().empty());
    }
    SECTION("closing, and auth: none (no identity)") {
        std::string out;
        append_check_allowed(out, 11, false, "rid2", rules, nullptr, scratch);
        const auto res = parse_response(out);
        CHECK_FALSE(res.keep_alive());
        // Every identity header once, empty: a gateway copying a fixed list gets no stale text.
        for (const char* name : {"X-Clerk-Subject", "X-Clerk-Machine-Id", "X-Clerk-Token-Id",
                                 "X-Clerk-Token-Type", "X-Clerk-Scopes", "X-Clerk-Claims"}) {
            INFO(name);
            CHECK(res.count(name) == 1);
            CHECK(res[name].empty());
        }
    }
    SECTION("a user's machine_id is empty; claims_to_headers targets are present") {
        clerk::core::identity_header_names names;
        names.claims_to_headers = {{"tenant", "X-Tenant-Id"}};
        const clerk::core::header_rules with_claims{names};
        clerk::core::identity user;
        user.type = clerk::core::token_type::session_token;
        edit(user).subject = "user_1";
        std::string out;
        append_check_allowed(out, 11, true, "rid4", with_claims, &user, scratch);
        const auto res = parse_response(out);
        CHECK(res["X-Clerk-Subject"] == "user_1");
        CHECK(res.count("X-Clerk-Machine-Id") == 1);
        CHECK(res["X-Clerk-Machine-Id"].empty());
        CHECK(res.count("X-Tenant-Id") == 1);
    }
    SECTION("HTTP/1.0 keep-alive is said out loud") {
        std::string out;
        append_check_allowed(out, 10, true, "rid3", rules, &id, scratch);
        const auto res = parse_response(out);
        CHECK(res.version() == 10);
        CHECK(res.keep_alive());
    }
}
