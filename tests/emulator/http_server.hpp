#pragma once
// HTTP/1.1 (plain and TLS) front end of the emulator: one coroutine per connection, keep-alive,
// 1 MiB body limit, and the latency/hang/close behaviours the router asks for.

#include <functional>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "tests/emulator/router.hpp"

namespace clerk::emulator {

namespace net = boost::asio;

/// Accepts connections and feeds each request to the router.
///
/// @par Thread Safety
/// Single-threaded: every listener and session runs on the one io_context given at
/// construction, which is what makes the router's plain-struct state safe.
/// @par Lifetime
/// The server, the router and the TLS context must outlive io_context::run().
class http_server {
public:
    /// `after_request` runs after each request is routed (used to persist --state-file).
    http_server(net::io_context& ioc, router& api, std::function<void()> after_request)
        : ioc_(ioc), router_(api), after_request_(std::move(after_request)) {}

    /// Binds `endpoint` (port 0 picks a free port) and starts accepting. `tls` null means
    /// plain HTTP. Returns the bound endpoint. Throws boost::system::system_error on failure.
    net::ip::tcp::endpoint listen(const net::ip::tcp::endpoint& endpoint, net::ssl::context* tls);

private:
    net::awaitable<void> accept_loop(net::ip::tcp::acceptor acceptor, net::ssl::context* tls);
    net::awaitable<void> run_plain(net::ip::tcp::socket socket);
    net::awaitable<void> run_tls(net::ip::tcp::socket socket, net::ssl::context& tls);
    template <class Stream>
    net::awaitable<void> serve(Stream& stream);
    template <class Stream>
    net::awaitable<void> hang(Stream& stream);

    net::io_context& ioc_;
    router& router_;
    std::function<void()> after_request_;
};

}  // namespace clerk::emulator
