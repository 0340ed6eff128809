#pragma once
// One downstream connection (CONTRIBUTING.md §4, §5): a coroutine (`task`) on the event loop that
// accepted it, serving HTTP/1.1 requests in order (keep-alive, pipelining) until the connection
// ends (or handing it to the HTTP/2 server).
#include "proxy/net/net.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstddef>
#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace clerk::proxy {

class any_stream;
class connection_registry;
class loop_runtime;
class metrics;

/// The collaborators of the sessions of one event loop. Lifetime: outlives all its sessions
/// (owned by the server, which stops the loops only after the registry is empty or
/// force-closed). Thread safety: used only on its loop, except the shared registry and metrics.
struct session_env {
    std::size_t loop = 0;             ///< index of the event loop (its upstream pool)
    loop_runtime* runtime = nullptr;  ///< this loop's pin of the current snapshot
    connection_registry* registry = nullptr;
    metrics* m = nullptr;
    std::shared_ptr<boost::asio::ssl::context> tls;  ///< terminate TLS when set
    bool http2 = false;  ///< HTTP/2 accepted (ALPN h2, or the prior-knowledge preface)
};

/// Serves `socket` (on the event loop of `env`) until the client closes, a limit or
/// timeout ends it, or a drain closes it. Per request: read head (header_timeout, header limit)
/// -> framing and path checks -> pre-auth -> authenticator -> route policy -> forward ->
/// access log. Every refusal is rendered from core::problem_for. Never throws for network
/// outcomes; anything else propagates to the co_spawn handler.
task<void> run_session(net::ip::tcp::socket socket, const session_env& env);

/// The same over a stream already made (the socket-free tests: an in-memory stream), with the
/// client address `peer_ip`. The stream is used as it is: no TLS handshake is made on it.
task<void> run_session(any_stream stream, std::string peer_ip, const session_env& env);

}  // namespace clerk::proxy
