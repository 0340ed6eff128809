#pragma once
// INTERNAL (Beast-heavy): include from proxy/ sources only, never from a public header.
//
// One stream type for every connection the proxy handles: plain TCP, TLS over TCP, and (for
// upstreams) a unix-domain socket. A std::variant instead of templates keeps the session and the
// relay compiled once; the dispatch cost of std::visit per I/O call is noise next to a syscall.

#include "proxy/net/deadline_stream.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <chrono>
#include <type_traits>
#include <utility>
#include <variant>

namespace clerk::proxy {

namespace net = boost::asio;
namespace beast = boost::beast;

/// AsyncReadStream + AsyncWriteStream over one of the three transports. Not thread-safe: use it
/// from one event loop (the owning session's). Not movable once I/O started (ssl state).
class any_stream {
public:
    using executor_type = loop_executor;
    using tcp_stream = deadline_stream<net::ip::tcp>;
    using tls_stream = beast::ssl_stream<tcp_stream>;
    using unix_stream = deadline_stream<net::local::stream_protocol>;

    template <class S, class... Args>
    explicit any_stream(std::in_place_type_t<S> t, Args&&... args)
        : v_(t, std::forward<Args>(args)...) {}

    executor_type get_executor() {
        return std::visit([](auto& s) -> executor_type { return s.get_executor(); }, v_);
    }

    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const MutableBufferSequence& b) {
                std::visit([&](auto& s) { s.async_read_some(b, std::move(handler)); }, v_);
            },
            token, buffers);
    }

    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const ConstBufferSequence& b) {
                std::visit([&](auto& s) { s.async_write_some(b, std::move(handler)); }, v_);
            },
            token, buffers);
    }

    /// Completes when the transport has bytes to read (without reading them), so a wait can be
    /// raced with a timer and cancelled without losing data.
    template <class Token>
    auto async_wait_readable(Token token) {
        return std::visit(
            [&token](auto& s) {
                return beast::get_lowest_layer(s).socket().async_wait(net::socket_base::wait_read,
                                                                      token);
            },
            v_);
    }

    /// Deadline for all pending and later operations; on expiry the socket is closed and the
    /// operations complete with beast::error::timeout.
    void expires_after(std::chrono::steady_clock::duration d) {
        std::visit([d](auto& s) { beast::get_lowest_layer(s).expires_after(d); }, v_);
    }
    void expires_never() {
        std::visit([](auto& s) { beast::get_lowest_layer(s).expires_never(); }, v_);
    }

    /// Closes the socket; pending operations complete with an error. Idempotent.
    void close() {
        std::visit([](auto& s) { beast::get_lowest_layer(s).close(); }, v_);
    }
    /// Half-close (send side) of the transport, for lingering close. Not for TLS.
    void shutdown_send() {
        boost::system::error_code ec;
        std::visit(
            [&ec](auto& s) {
                beast::get_lowest_layer(s).socket().shutdown(net::socket_base::shutdown_send, ec);
            },
            v_);
    }
    bool is_open() {
        return std::visit([](auto& s) { return beast::get_lowest_layer(s).socket().is_open(); },
                          v_);
    }
    int native_handle() {
        return std::visit(
            [](auto& s) {
                return static_cast<int>(beast::get_lowest_layer(s).socket().native_handle());
            },
            v_);
    }

    tls_stream* tls() { return std::get_if<tls_stream>(&v_); }
    tcp_stream* tcp() { return std::get_if<tcp_stream>(&v_); }
    unix_stream* unix_socket() { return std::get_if<unix_stream>(&v_); }

private:
    std::variant<tcp_stream, tls_stream, unix_stream> v_;
};

}  // namespace clerk::proxy
