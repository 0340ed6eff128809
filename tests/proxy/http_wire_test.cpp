#include "proxy/http/http_wire.hpp"

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <catch2/catch.hpp>

#include <sstream>

namespace http = boost::beast::http;
using namespace clerk::proxy;

namespace {

/// What Beast's serializer (the oracle) writes for `m`.
template <class Message>
std::string beast_wire(Message& m) {
    std::ostringstream os;
    os << m;
    return os.str();
}

}  // namespace

TEST_CASE("http_wire: request heads match Beast's serializer", "[http_wire]") {
    http::request<http::empty_body, header_fields> req{http::verb::get, "/a/b?x=1", 11};
    req.set(http::field::host, "up.example:8080");
    req.set("X-Clerk-Subject", "mch_1");
    req.insert("X-Multi", "a");
    req.insert("X-Multi", "b");
    std::string out;
    append_request_line(out, "GET", "/a/b?x=1");
    append_fields(out, req);
    CHECK(out == beast_wire(req));
}

TEST_CASE("http_wire: status lines and response heads match Beast's serializer", "[http_wire]") {
    for (const unsigned version : {10U, 11U}) {
        for (const unsigned status : {200U, 204U, 301U, 404U, 418U, 503U, 599U}) {
            for (const std::string_view reason :
                 {std::string_view(), std::string_view("Custom Reason")}) {
                http::response<http::empty_body, header_fields> res{
                    static_cast<http::status>(status), version};
                if (!reason.empty()) {
                    res.reason(std::string(reason));
                }
                res.set(http::field::content_type, "text/plain");
                res.set("X-Request-Id", "abc");
                std::string out;
                append_status_line(out, version, status, reason);
                append_fields(out, res);
                INFO(version << " " << status << " '" << reason << "'");
                CHECK(out == beast_wire(res));
            }
        }
    }
}

TEST_CASE("http_wire: chunk framing matches Beast's chunked serializer", "[http_wire]") {
    for (const std::size_t size : {1U, 9U, 10U, 15U, 16U, 255U, 4096U, 65536U}) {
        const std::string data(size, 'x');
        http::response<http::string_body, header_fields> res{http::status::ok, 11};
        res.chunked(true);
        res.body() = data;
        const std::string beast = beast_wire(res);
        std::string out;
        append_status_line(out, 11, 200, "");
        append_fields(out, res);
        append_chunk_header(out, size);
        out += data;
        out += chunk_end;
        out += last_chunk;
        INFO(size);
        CHECK(out == beast);
    }
}

TEST_CASE("http_wire: chunk_frame frames one piece of a chunked body", "[http_wire]") {
    // A whole body in one piece, framed by chunk_frame, is what Beast's serializer writes.
    for (const std::size_t size : {1U, 10U, 255U, 65536U}) {
        const std::string data(size, 'x');
        const chunk_frame f(size, /*last=*/true);
        std::string piece;
        piece += f.head();
        piece += data;
        piece += f.tail();
        std::string expected;
        append_chunk_header(expected, size);
        expected += data;
        expected += chunk_end;
        expected += last_chunk;
        INFO(size);
        CHECK(piece == expected);
    }
    // A middle piece ends its chunk only; an empty last piece is the last chunk alone; an empty
    // middle piece writes nothing (a zero-size chunk would end the body).
    const chunk_frame middle(26, false);
    CHECK(middle.head() == "1a\r\n");
    CHECK(middle.tail() == "\r\n");
    const chunk_frame empty_last(0, true);
    CHECK(empty_last.head().empty());
    CHECK(empty_last.tail() == "0\r\n\r\n");
    const chunk_frame empty_middle(0, false);
    CHECK(empty_middle.head().empty());
    CHECK(empty_middle.tail().empty());
    const chunk_frame widest(UINT64_MAX, false);
    CHECK(widest.head() == "ffffffffffffffff\r\n");
}
