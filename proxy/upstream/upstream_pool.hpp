#pragma once
// The proxy's one outbound connector and keep-alive pool (docs/reference.md §3 "upstream"): http,
// https (peer and host-name verification, SNI) and unix: sockets. The upstream, Clerk's API
// (proxy/auth/clerk_client.cpp) and Redis (proxy/auth/redis_client.cpp) all connect through it.
#include "config/config.hpp"
#include "proxy/net/net.hpp"

#include <boost/system/error_code.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace clerk::proxy {

class any_stream;  // proxy/net/any_stream.hpp

/// A pool per upstream target and event loop: its sockets and timers are bound to that loop
/// (its coroutines run on the caller's); acquire(), take_idle() and release() may be called
/// from any thread concurrently;
/// a connection is owned by exactly one caller between acquire() and release(). Lifetime:
/// shared by runtime snapshots whose upstream settings are equal.
class upstream_pool {
public:
    /// nullptr and `error` set when the TLS context cannot be built (a bad CA file; `ca_key`
    /// names its config key in the message).
    static std::shared_ptr<upstream_pool> create(net::any_io_executor exec,
                                                 const config::upstream_config& cfg,
                                                 std::string& error,
                                                 std::string_view ca_key = "upstream.ca_file");
    upstream_pool(net::any_io_executor exec, const config::upstream_config& cfg,
                  std::shared_ptr<boost::asio::ssl::context> tls);
    ~upstream_pool();
    upstream_pool(const upstream_pool&) = delete;
    upstream_pool& operator=(const upstream_pool&) = delete;

    struct connection {
        std::unique_ptr<any_stream> stream;
        bool reused = false;  ///< came from the idle list (it may have been closed by the peer)
    };

    /// An idle connection that still looks alive (unless `fresh`), else a new one: resolve,
    /// connect and TLS handshake within upstream.connect_timeout. On failure the error is
    /// returned (beast::error::timeout for the timeout) and `out.stream` is null.
    /// `can_retry`: the caller sends the request again on a fresh connection if a reused one
    /// turns out closed (idempotent, no body); then a connection idle for less than a second is
    /// taken without the liveness probe (a recv syscall that is known to fail with EAGAIN).
    task<boost::system::error_code> acquire(connection& out, bool fresh, bool can_retry = false);

    /// acquire()'s first step, without I/O: an idle connection that still looks alive (true,
    /// `out` set), or false. Then connect() makes a new one.
    bool take_idle(connection& out, bool can_retry = false);

    /// acquire()'s second step: a new connection (resolve, connect, TLS handshake) within
    /// upstream.connect_timeout.
    task<boost::system::error_code> connect(connection& out);
    /// The same by `deadline` (a caller with its own budget: the Clerk client).
    task<boost::system::error_code> connect_until(connection& out,
                                                  std::chrono::steady_clock::time_point deadline);

    /// How connect() makes a new connection instead of resolving, connecting and handshaking:
    /// the socket-free tests install one that hands out in-memory streams. Set before use.
    using connector = std::function<boost::system::error_code(connection&)>;
    void set_connector(connector c) { connector_ = std::move(c); }

    /// Returns a connection whose last exchange completed cleanly and may be reused. Beyond
    /// max_idle_connections the oldest idle connection is closed.
    void release(std::unique_ptr<any_stream> s);

    /// Closes every idle connection and retires the HTTP/2 ones (shutdown).
    void close_idle();
    /// Retires the HTTP/2 connections: no new stream, a GOAWAY once their streams ended, then
    /// closed (defined in proxy/h2/h2_client.cpp). On the pool's event loop.
    void retire_h2();
    /// Its HTTP/2 connections not closed yet (h2_client.cpp). On the pool's event loop.
    std::size_t h2_open() const;

    /// True when `cfg` targets the same upstream with the same TLS settings (reload reuse).
    bool serves(const config::upstream_config& cfg) const;

    const config::upstream_config& settings() const { return cfg_; }

    /// The multiplexed HTTP/2 connections of this pool (upstream.protocol h2c or h2), managed
    /// by proxy/h2/h2_client.cpp. Used on the pool's event loop only.
    struct h2_connections;
    std::shared_ptr<h2_connections> h2;

private:
    struct idle_entry {
        std::unique_ptr<any_stream> stream;
        std::chrono::steady_clock::time_point since;
    };
    net::any_io_executor exec_;
    config::upstream_config cfg_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    std::mutex mu_;
    std::deque<idle_entry> idle_;  // back = most recently used
    connector connector_;
};

}  // namespace clerk::proxy
