#pragma once
// INTERNAL (Beast-heavy): include from proxy/ sources only, never from a public header.
//
// One stream type for every connection the proxy handles: plain TCP, TLS over TCP, and (for
// upstreams) a unix-domain socket; and, for the socket-free tests of the session and the relay,
// an in-memory pipe (Beast's test stream). A std::variant instead of templates keeps the session
// and the relay compiled once; the dispatch cost of std::visit per I/O call is noise next to a
// syscall.

#include "proxy/net/deadline_stream.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <chrono>
#include <type_traits>
#include <utility>
#include <variant>

namespace clerk::proxy {

namespace net = boost::asio;
namespace beast = boost::beast;

/// One end of an in-memory pipe (Beast's test stream; pair two with connect()), for the
/// socket-free tests of the session and the relay (tests/proxy/session_relay_test.cpp). It has
/// no deadlines (expires_* do nothing: a test that needs a timeout runs the real binary) and is
/// always "readable" for async_wait_readable; close() ends it for good (the peer reads EOF).
/// (Its executor is type-erased: Beast's test stream needs that to compile with any handler.)
class memory_stream : public beast::test::stream {
public:
    using basic_stream::basic_stream;
    void close() {
        open_ = false;
        basic_stream::close();
    }
    bool is_open() const { return open_; }

private:
    bool open_ = true;
};

/// AsyncReadStream + AsyncWriteStream over one of the transports. Not thread-safe: use it
/// from one event loop (the owning session's). Not movable once I/O started (ssl state).
class any_stream {
public:
    using executor_type = loop_executor;
    using tcp_stream = deadline_stream<net::ip::tcp>;
    using tls_stream = beast::ssl_stream<tcp_stream>;
    using unix_stream = deadline_stream<net::local::stream_protocol>;
    using memory_stream = proxy::memory_stream;

    template <class S, class... Args>
    explicit any_stream(std::in_place_type_t<S> t, Args&&... args)
        : v_(t, std::forward<Args>(args)...) {}

    executor_type get_executor() {
        return std::visit(
            [](auto& s) -> executor_type {
                if constexpr (is_memory<decltype(s)>) {
                    return loop_of(s.get_executor());
                } else {
                    return s.get_executor();
                }
            },
            v_);
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
        return net::async_initiate<Token, void(boost::system::error_code)>(
            [this](auto handler) {
                std::visit(
                    [&handler](auto& s) {
                        if constexpr (is_memory<decltype(s)>) {
                            net::post(s.get_executor(),
                                      beast::bind_front_handler(std::move(handler),
                                                                boost::system::error_code{}));
                        } else {
                            beast::get_lowest_layer(s).socket().async_wait(
                                net::socket_base::wait_read, std::move(handler));
                        }
                    },
                    v_);
            },
            token);
    }

    /// Deadline for all pending and later operations; on expiry the socket is closed and the
    /// operations complete with beast::error::timeout.
    void expires_after(std::chrono::steady_clock::duration d) {
        std::visit(
            [d](auto& s) {
                if constexpr (!is_memory<decltype(s)>) {
                    beast::get_lowest_layer(s).expires_after(d);
                }
            },
            v_);
    }
    void expires_never() {
        std::visit(
            [](auto& s) {
                if constexpr (!is_memory<decltype(s)>) {
                    beast::get_lowest_layer(s).expires_never();
                }
            },
            v_);
    }

    /// Closes the socket; pending operations complete with an error. Idempotent.
    void close() {
        std::visit(
            [](auto& s) {
                if constexpr (is_memory<decltype(s)>) {
                    s.close();
                } else {
                    beast::get_lowest_layer(s).close();
                }
            },
            v_);
    }
    /// Half-close (send side) of the transport, for lingering close. Not for TLS.
    void shutdown_send() {
        boost::system::error_code ec;
        std::visit(
            [&ec](auto& s) {
                if constexpr (is_memory<decltype(s)>) {
                    s.basic_stream::close();  // the peer reads EOF; this end still reads
                } else {
                    beast::get_lowest_layer(s).socket().shutdown(net::socket_base::shutdown_send,
                                                                 ec);
                }
            },
            v_);
    }
    bool is_open() {
        return std::visit(
            [](auto& s) {
                if constexpr (is_memory<decltype(s)>) {
                    return s.is_open();
                } else {
                    return beast::get_lowest_layer(s).socket().is_open();
                }
            },
            v_);
    }
    /// The socket's descriptor; -1 for an in-memory stream.
    int native_handle() {
        return std::visit(
            [](auto& s) {
                if constexpr (is_memory<decltype(s)>) {
                    return -1;
                } else {
                    return static_cast<int>(beast::get_lowest_layer(s).socket().native_handle());
                }
            },
            v_);
    }

    tls_stream* tls() { return std::get_if<tls_stream>(&v_); }
    tcp_stream* tcp() { return std::get_if<tcp_stream>(&v_); }
    unix_stream* unix_socket() { return std::get_if<unix_stream>(&v_); }

private:
    template <class S>
    static constexpr bool is_memory = std::is_same_v<std::remove_cvref_t<S>, memory_stream>;

    std::variant<tcp_stream, tls_stream, unix_stream, memory_stream> v_;
};

}  // namespace clerk::proxy
