#include "proxy/http/message_rules.hpp"
#include "fakes/principal_edit.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using clerk::testing::edit;

namespace http = boost::beast::http;
using clerk::core::decision_kind;
using clerk::proxy::check_request_framing;
using clerk::proxy::request_framing;

namespace {

clerk::proxy::header_fields make_fields(
    std::initializer_list<std::pair<std::string_view, std::string_view>> kv) {
    clerk::proxy::header_fields f;
    for (const auto& [k, v] : kv) {
        f.insert(k, v);
    }
    return f;
}

std::vector<std::string> values(const clerk::proxy::header_fields& f, std::string_view name) {
    std::vector<std::string> out;
    for (auto [it, end] = f.equal_range(name); it != end; ++it) {
        out.emplace_back(it->value());
    }
    return out;
}

}  // namespace

TEST_CASE("framing: plain requests pass and report their body", "[message_rules]") {
    request_framing fr;
    auto d = check_request_framing(make_fields({{"Host", "a"}}), 11, 0, fr);
    CHECK(d.allowed());
    CHECK_FALSE(fr.has_body());

    d = check_request_framing(make_fields({{"Host", "a"}, {"Content-Length", "12"}}), 11, 0, fr);
    CHECK(d.allowed());
    REQUIRE(fr.content_length);
    CHECK(*fr.content_length == 12);

    d = check_request_framing(make_fields({{"Host", "a"}, {"Transfer-Encoding", "Chunked"}}), 11, 0,
                              fr);
    CHECK(d.allowed());
    CHECK(fr.chunked);

    // Equal duplicates are one length (RFC 9110 §8.6).
    d = check_request_framing(
        make_fields({{"Host", "a"}, {"Content-Length", "5"}, {"Content-Length", "5, 5"}}), 11, 0,
        fr);
    CHECK(d.allowed());
    CHECK(*fr.content_length == 5);

    // HTTP/1.0 needs no Host.
    d = check_request_framing(clerk::proxy::header_fields{}, 10, 0, fr);
    CHECK(d.allowed());
}

TEST_CASE("framing: smuggling shapes are 400", "[message_rules]") {
    struct row {
        std::vector<std::pair<std::string_view, std::string_view>> headers;
        std::string_view reason;
    };
    const std::vector<row> rows{
        {{{"Host", "a"}, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
         "content_length_with_transfer_encoding"},
        {{{"Host", "a"}, {"Content-Length", "5"}, {"Content-Length", "6"}},
         "invalid_content_length"},
        {{{"Host", "a"}, {"Content-Length", "abc"}}, "invalid_content_length"},
        {{{"Host", "a"}, {"Content-Length", "-1"}}, "invalid_content_length"},
        {{{"Host", "a"}, {"Content-Length", ""}}, "invalid_content_length"},
        {{{"Host", "a"}, {"Content-Length", "+5"}}, "invalid_content_length"},
        {{{"Host", "a"}, {"Content-Length", "99999999999999999999999"}}, "invalid_content_length"},
        {{{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}}, "unsupported_transfer_encoding"},
        {{{"Host", "a"}, {"Transfer-Encoding", "identity"}}, "unsupported_transfer_encoding"},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}},
         "unsupported_transfer_encoding"},
        {{}, "invalid_host"},
        {{{"Host", "a"}, {"Host", "b"}}, "invalid_host"},
    };
    for (const auto& r : rows) {
        clerk::proxy::header_fields f;
        for (const auto& [k, v] : r.headers) {
            f.insert(k, v);
        }
        request_framing fr;
        const auto d = check_request_framing(f, 11, 0, fr);
        INFO(r.reason);
        CHECK(d.kind == decision_kind::bad_request);
        CHECK(d.reason == r.reason);
    }
}

TEST_CASE("framing: Content-Length above max_body_bytes is 413 up front", "[message_rules]") {
    request_framing fr;
    auto d = check_request_framing(make_fields({{"Host", "a"}, {"Content-Length", "1001"}}), 11,
                                   1000, fr);
    CHECK(d.kind == decision_kind::body_too_large);
    d = check_request_framing(make_fields({{"Host", "a"}, {"Content-Length", "1000"}}), 11, 1000,
                              fr);
    CHECK(d.allowed());
}

TEST_CASE("request ids: sane client ids are kept, others replaced", "[message_rules]") {
    using clerk::proxy::is_sane_request_id;
    CHECK(is_sane_request_id("abc-DEF_1.2"));
    CHECK(is_sane_request_id(std::string(128, 'a')));
    CHECK_FALSE(is_sane_request_id(std::string(129, 'a')));
    CHECK_FALSE(is_sane_request_id(""));
    CHECK_FALSE(is_sane_request_id("a b"));
    CHECK_FALSE(is_sane_request_id("a\"b"));
    CHECK_FALSE(is_sane_request_id("a\r\nb"));

    const auto gen = clerk::proxy::generate_request_id();
    CHECK(gen.size() == 32);
    CHECK(is_sane_request_id(gen));
    CHECK(gen != clerk::proxy::generate_request_id());

    CHECK(clerk::proxy::request_id_for(make_fields({{"X-Request-Id", "keep-me"}})) == "keep-me");
    CHECK(clerk::proxy::request_id_for(make_fields({{"X-Request-Id", "no way"}})).size() == 32);
    CHECK(clerk::proxy::request_id_for(make_fields({{"X-Request-Id", "a"}, {"X-Request-Id", "b"}}))
              .size() == 32);
}

TEST_CASE("request rewrite: identity, hop-by-hop and Connection-named headers never pass",
          "[message_rules]") {
    clerk::core::header_rules rules{clerk::core::identity_header_names{}};
    const auto in = make_fields({
        {"Host", "client.example"},
        {"Authorization", "Bearer mt_secret"},
        {"X-Clerk-Subject", "mch_spoofed"},
        {"x-clerk-anything", "spoofed"},
        {"Connection", "keep-alive, X-Hop"},
        {"X-Hop", "1"},
        {"Keep-Alive", "timeout=5"},
        {"Proxy-Connection", "keep-alive"},
        {"TE", "trailers"},
        {"Upgrade", "websocket"},
        {"Transfer-Encoding", "chunked"},
        {"Content-Length", "3"},
        {"X-Forwarded-For", "10.0.0.1"},
        {"X-Forwarded-Proto", "https"},
        {"X-Request-Id", "client-id"},
        {"Accept", "*/*"},
    });
    clerk::proxy::header_fields out;
    clerk::proxy::forward_params p;
    p.rules = &rules;
    p.preserve_host = true;
    p.upstream_host = "127.0.0.1:3000";
    p.peer_ip = "127.0.0.1";
    p.request_id = "rid-1";
    clerk::proxy::rewrite_request_headers(in, out, p);

    for (const char* gone : {"Authorization", "X-Clerk-Subject", "x-clerk-anything", "Connection",
                             "X-Hop", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade",
                             "Transfer-Encoding", "Content-Length"}) {
        INFO(gone);
        CHECK(out.count(gone) == 0);
    }
    CHECK(values(out, "Host") == std::vector<std::string>{"client.example"});
    CHECK(values(out, "X-Forwarded-For") == std::vector<std::string>{"10.0.0.1, 127.0.0.1"});
    CHECK(values(out, "X-Forwarded-Proto") == std::vector<std::string>{"http"});
    CHECK(values(out, "X-Forwarded-Host") == std::vector<std::string>{"client.example"});
    CHECK(values(out, "X-Request-Id") == std::vector<std::string>{"rid-1"});
    CHECK(values(out, "Accept") == std::vector<std::string>{"*/*"});
}

TEST_CASE("request rewrite: verified identity is injected, Host follows preserve_host",
          "[message_rules]") {
    clerk::core::header_rules rules{clerk::core::identity_header_names{}};
    clerk::core::identity id;
    edit(id).subject = "mch_1";
    id.token_id = "mt_1";
    edit(id).scopes = {"a", "b"};
    const auto in = make_fields({{"Host", "client.example"},
                                 {"Authorization", "Bearer mt_x"},
                                 {"X-Clerk-Subject", "mch_spoofed"}});
    clerk::proxy::header_fields out;
    clerk::proxy::forward_params p;
    p.rules = &rules;
    p.id = &id;
    p.forward_authorization = true;
    p.preserve_host = false;
    p.upstream_host = "backend:3000";
    p.peer_ip = "::1";
    p.downstream_tls = true;
    p.request_id = "r";
    clerk::proxy::rewrite_request_headers(in, out, p);
    CHECK(values(out, "X-Clerk-Subject") == std::vector<std::string>{"mch_1"});
    CHECK(values(out, "X-Clerk-Machine-Id") == std::vector<std::string>{"mch_1"});
    CHECK(values(out, "X-Clerk-Token-Id") == std::vector<std::string>{"mt_1"});
    CHECK(values(out, "X-Clerk-Scopes") == std::vector<std::string>{"a,b"});
    CHECK(values(out, "Authorization") == std::vector<std::string>{"Bearer mt_x"});
    CHECK(values(out, "Host") == std::vector<std::string>{"backend:3000"});
    CHECK(values(out, "X-Forwarded-Proto") == std::vector<std::string>{"https"});
    CHECK(values(out, "X-Forwarded-For") == std::vector<std::string>{"::1"});
}

TEST_CASE("response rewrite: hop-by-hop headers dropped, request id set", "[message_rules]") {
    const auto in = make_fields({{"Connection", "close, X-Private"},
                                 {"X-Private", "1"},
                                 {"Keep-Alive", "timeout=5"},
                                 {"Transfer-Encoding", "chunked"},
                                 {"Content-Length", "5"},
                                 {"X-Request-Id", "upstream-id"},
                                 {"Set-Cookie", "a=1"},
                                 {"Set-Cookie", "b=2"}});
    clerk::proxy::header_fields out;
    clerk::proxy::rewrite_response_headers(in, out, "rid");
    CHECK(out.count("Connection") == 0);
    CHECK(out.count("X-Private") == 0);
    CHECK(out.count("Keep-Alive") == 0);
    CHECK(out.count("Transfer-Encoding") == 0);
    CHECK(out.count("Content-Length") == 0);
    CHECK(values(out, "X-Request-Id") == std::vector<std::string>{"rid"});
    CHECK(values(out, "Set-Cookie") == std::vector<std::string>{"a=1", "b=2"});
}

TEST_CASE("websocket: only a GET HTTP/1.1 with Upgrade websocket and Connection upgrade",
          "[message_rules]") {
    using clerk::proxy::is_websocket_upgrade;
    const auto ws = make_fields({{"Upgrade", "websocket"}, {"Connection", "Upgrade"}});
    CHECK(is_websocket_upgrade(ws, 11, "GET"));
    CHECK(is_websocket_upgrade(
        make_fields({{"Upgrade", "foo/2, WebSocket"}, {"Connection", "keep-alive, upgrade"}}), 11,
        "GET"));
    CHECK_FALSE(is_websocket_upgrade(ws, 10, "GET"));
    CHECK_FALSE(is_websocket_upgrade(ws, 11, "POST"));
    CHECK_FALSE(is_websocket_upgrade(make_fields({{"Upgrade", "websocket"}}), 11, "GET"));
    CHECK_FALSE(is_websocket_upgrade(make_fields({{"Upgrade", "h2c"}, {"Connection", "Upgrade"}}),
                                     11, "GET"));
    CHECK_FALSE(is_websocket_upgrade(
        make_fields({{"Upgrade", "websocketx"}, {"Connection", "Upgrade"}}), 11, "GET"));
}

TEST_CASE("websocket: the upgrade's hop-by-hop pair is the only one forwarded, both ways",
          "[message_rules]") {
    clerk::core::header_rules rules{clerk::core::identity_header_names{}};
    const auto in = make_fields({{"Host", "a"},
                                 {"Upgrade", "websocket, spoofed"},
                                 {"Connection", "Upgrade, X-Hop"},
                                 {"X-Hop", "1"},
                                 {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                 {"Sec-WebSocket-Version", "13"}});
    clerk::proxy::forward_params p;
    p.rules = &rules;
    p.request_id = "rid";
    p.websocket_upgrade = true;
    clerk::proxy::header_fields out;
    clerk::proxy::rewrite_request_headers(in, out, p);
    CHECK(values(out, "Upgrade") == std::vector<std::string>{"websocket"});
    CHECK(values(out, "Connection") == std::vector<std::string>{"upgrade"});
    CHECK(out.count("X-Hop") == 0);
    CHECK(values(out, "Sec-WebSocket-Key") == std::vector<std::string>{"dGhlIHNhbXBsZSBub25jZQ=="});
    CHECK(values(out, "Sec-WebSocket-Version") == std::vector<std::string>{"13"});

    const auto res = make_fields({{"Upgrade", "websocket"},
                                  {"Connection", "Upgrade"},
                                  {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}});
    std::string head;
    clerk::proxy::append_response_headers(res, "rid", head, /*switching=*/true);
    CHECK(head ==
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Request-Id: rid\r\n"
          "Connection: upgrade\r\nUpgrade: websocket\r\n");
    std::string plain;
    clerk::proxy::append_response_headers(res, "rid", plain);
    CHECK(plain.find("Upgrade") == std::string::npos);
}
