#include "tests/emulator/http_server.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <exception>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace clerk::emulator {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
constexpr std::uint64_t body_limit = 1024 * 1024;  // 1 MiB
constexpr auto idle_timeout = 60s;                 // waiting for (the rest of) a request
constexpr auto write_timeout = 30s;
constexpr auto hang_limit = 60s;

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Expected ways for a connection to end; anything else on read is a malformed request.
bool is_disconnect(const boost::system::error_code& ec) {
    return ec == http::error::end_of_stream || ec == http::error::partial_message ||
           ec == net::error::eof || ec == net::error::connection_reset ||
           ec == net::error::operation_aborted || ec == beast::error::timeout ||
           ec == net::ssl::error::stream_truncated || ec == net::error::broken_pipe;
}

void log_exception(std::exception_ptr e) {
    if (!e) {
        return;
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "clerk-emulator: connection error: %s\n", ex.what());
    }
}

}  // namespace

tcp::endpoint http_server::listen(const tcp::endpoint& endpoint, net::ssl::context* tls) {
    tcp::acceptor acceptor(ioc_);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(net::socket_base::max_listen_connections);
    const auto bound = acceptor.local_endpoint();
    net::co_spawn(ioc_, accept_loop(std::move(acceptor), tls), log_exception);
    return bound;
}

net::awaitable<void> http_server::accept_loop(tcp::acceptor acceptor, net::ssl::context* tls) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
        if (ec == net::error::operation_aborted) {
            co_return;
        }
        if (ec) {
            continue;  // e.g. EMFILE: keep serving the connections we have
        }
        if (tls != nullptr) {
            net::co_spawn(ioc_, run_tls(std::move(socket), *tls), log_exception);
        } else {
            net::co_spawn(ioc_, run_plain(std::move(socket)), log_exception);
        }
    }
}

net::awaitable<void> http_server::run_plain(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    co_await serve(stream);
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

net::awaitable<void> http_server::run_tls(tcp::socket socket, net::ssl::context& tls) {
    beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), tls);
    beast::get_lowest_layer(stream).expires_after(idle_timeout);
    auto [ec] = co_await stream.async_handshake(net::ssl::stream_base::server, use_tuple);
    if (ec) {
        co_return;
    }
    co_await serve(stream);
    if (beast::get_lowest_layer(stream).socket().is_open()) {
        beast::get_lowest_layer(stream).expires_after(5s);
        co_await stream.async_shutdown(use_tuple);
    }
}

template <class Stream>
net::awaitable<void> http_server::hang(Stream& stream) {
    // Never answer: wait until the client goes away (any read completes) or hang_limit passes.
    using namespace net::experimental::awaitable_operators;
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_never();
    net::steady_timer timer(co_await net::this_coro::executor, hang_limit);
    std::array<char, 512> scratch{};
    co_await (timer.async_wait(use_tuple) ||
              lowest.socket().async_read_some(net::buffer(scratch), use_tuple));
}

template <class Stream>
net::awaitable<void> http_server::serve(Stream& stream) {
    beast::flat_buffer buffer;
    for (;;) {
        // Phase 1: read one request (idle timeout covers keep-alive waits and slow clients).
        http::request_parser<http::string_body> parser;
        parser.body_limit(body_limit);
        beast::get_lowest_layer(stream).expires_after(idle_timeout);
        auto [rec, rn] = co_await http::async_read(stream, buffer, parser, use_tuple);
        if (rec && is_disconnect(rec)) {
            co_return;
        }
        api_response res;
        bool keep_alive = false;
        unsigned version = 11;
        if (rec) {
            // Malformed or oversized: answer once, then close (the stream position is unknown).
            res = rec == http::error::body_limit
                      ? error_response(413, "request_body_too_large", "Request body too large",
                                       "Request bodies are limited to 1 MiB.")
                      : error_response(400, "request_invalid", "Malformed HTTP request",
                                       rec.message());
        } else {
            // Phase 2: route (pure; exceptions become 500, never a crash).
            const auto& req = parser.get();
            version = req.version();
            keep_alive = req.keep_alive();
            api_request areq{std::string(req.method_string()), std::string(req.target()),
                             std::nullopt, std::nullopt, req.body()};
            if (auto it = req.find(http::field::authorization); it != req.end()) {
                areq.authorization = std::string(it->value());
            }
            if (auto it = req.find("Clerk-API-Version"); it != req.end()) {
                areq.api_version = std::string(it->value());
            }
            try {
                res = router_.handle(areq, now_ms());
            } catch (const std::exception& ex) {
                res = error_response(500, "internal_clerk_error", "Emulator error", ex.what());
            }
            if (after_request_) {
                after_request_();
            }
        }

        // Phase 3: latency, then the fault or the response.
        if (res.delay > std::chrono::milliseconds::zero()) {
            net::steady_timer timer(co_await net::this_coro::executor, res.delay);
            co_await timer.async_wait(use_tuple);
        }
        if (res.action == fault::hang) {
            co_await hang(stream);
            beast::get_lowest_layer(stream).close();
            co_return;
        }
        if (res.action == fault::close) {
            beast::get_lowest_layer(stream).close();  // no response, no TLS close_notify
            co_return;
        }
        if (res.action == fault::reset) {
            // SO_LINGER {on, 0}: close() discards unsent data and sends a RST, not a FIN.
            auto& socket = beast::get_lowest_layer(stream).socket();
            boost::system::error_code ignored;
            socket.set_option(net::socket_base::linger(true, 0), ignored);
            socket.close(ignored);
            co_return;
        }
        http::response<http::string_body> out;
        out.version(version);
        out.result(res.status);
        out.set(http::field::content_type, res.content_type);
        for (const auto& [name, value] : res.headers) {
            out.set(name, value);
        }
        out.body() = std::move(res.body);
        out.keep_alive(keep_alive);
        out.prepare_payload();
        beast::get_lowest_layer(stream).expires_after(write_timeout);
        auto [wec, wn] = co_await http::async_write(stream, out, use_tuple);
        if (wec || !keep_alive) {
            co_return;
        }
    }
}

}  // namespace clerk::emulator
