#include "proxy/admin.hpp"

#include "proxy/metrics.hpp"
#include "proxy/net/any_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace clerk::proxy {
namespace {

namespace http = boost::beast::http;

}  // namespace

admin_response admin_route(std::string_view method, std::string_view target,
                           const admin_state& state) {
    const auto path = target.substr(0, target.find('?'));
    admin_response r;
    if (path != "/healthz" && path != "/readyz" && path != "/metrics") {
        r.body = "not found\n";
        return r;
    }
    if (method != "GET" && method != "HEAD") {
        r.status = 405;
        r.body = "method not allowed\n";
        return r;
    }
    if (path == "/healthz") {
        r.status = 200;
        r.body = "ok\n";
    } else if (path == "/readyz") {
        const bool ready = state.ready.load(std::memory_order_acquire);
        r.status = ready ? 200 : 503;
        r.body = ready ? "ready\n" : "draining\n";
    } else {
        r.status = 200;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = state.m != nullptr ? state.m->render() : std::string();
    }
    return r;
}

net::awaitable<void> run_admin_session(net::ip::tcp::socket socket, const admin_state& state) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::empty_body> parser;
        parser.header_limit(8 * 1024);
        stream.expires_after(std::chrono::seconds(60));
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
        if (ec) {
            break;
        }
        const auto& req = parser.get();
        const auto r = admin_route(req.method_string(), req.target(), state);
        http::response<http::string_body> res{static_cast<http::status>(r.status), req.version()};
        res.set(http::field::content_type, r.content_type);
        res.set(http::field::cache_control, "no-store");
        res.body() = r.body;
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        stream.expires_after(std::chrono::seconds(10));
        http::response_serializer<http::string_body> sr{res};
        boost::system::error_code wec;
        if (req.method() == http::verb::head) {
            std::tie(wec, std::ignore) = co_await http::async_write_header(stream, sr, use_tuple);
        } else {
            std::tie(wec, std::ignore) = co_await http::async_write(stream, sr, use_tuple);
        }
        if (wec || !res.keep_alive()) {
            break;
        }
    }
    boost::system::error_code ec;
    stream.socket().shutdown(net::socket_base::shutdown_send, ec);
    stream.close();
}

}  // namespace clerk::proxy
