#pragma once
// A bound TCP listener and its accept loop. Used for the main listener (sessions) and the admin
// listener; what happens to an accepted socket is the owner's callback.
#include "config/config.hpp"
#include "proxy/net/net.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace clerk::proxy {

/// Thread safety: run() runs on the listener's event loop (one thread); close() may be called
/// from any thread. Lifetime: must outlive run() (the server keeps it until its loop stopped).
class listener {
public:
    /// Called for each accepted socket, on the listener's loop; the socket belongs to that loop
    /// for its whole life (CONTRIBUTING.md §4: a connection never changes thread).
    using accept_handler = std::function<void(net::ip::tcp::socket)>;

    /// Binds and listens on `addr` (port 0 = a free port) with the acceptor on `exec`'s loop.
    /// With `reuse_port`, SO_REUSEPORT is set so that one listener per event loop can bind the
    /// same address (the kernel spreads connections over them). nullptr and `error` set on
    /// failure ("cannot listen on 127.0.0.1:8080: Address already in use").
    static std::unique_ptr<listener> bind(net::any_io_executor exec,
                                          const config::listen_address& addr, std::string& error,
                                          bool reuse_port = false);

    listener(net::any_io_executor exec, net::ip::tcp::acceptor acceptor);

    /// The bound endpoint (with the actual port).
    net::ip::tcp::endpoint local_endpoint() const { return endpoint_; }

    /// Accepts until close(). Transient errors (EMFILE, ENFILE, ECONNABORTED) are logged
    /// (rate-limited) and retried after a short pause.
    net::awaitable<void> run(accept_handler on_accept);

    /// The acceptor's loop: spawn run() on it.
    net::any_io_executor executor() { return acceptor_.get_executor(); }

    /// Stops accepting: the acceptor is closed on its loop; run() then returns.
    void close();

private:
    net::any_io_executor exec_;  ///< the listener's event loop
    net::ip::tcp::acceptor acceptor_;
    net::ip::tcp::endpoint endpoint_;
};

/// "127.0.0.1:8080", "[::1]:8080".
std::string to_string(const net::ip::tcp::endpoint& ep);

}  // namespace clerk::proxy
