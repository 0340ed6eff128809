#pragma once
// The admin listener's endpoints (docs/reference.md §7): GET /healthz, /readyz, /metrics. Never on
// the main listener.
#include "proxy/net/net.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <string>
#include <string_view>

namespace clerk::proxy {

class metrics;

/// Shared with the server. Thread safety: `ready` is flipped by the server (true once the
/// listeners are bound, false when draining) and read by admin sessions.
struct admin_state {
    std::atomic<bool> ready{false};
    metrics* m = nullptr;
};

/// The admin answer for a request line, as plain data (socket-free tests).
struct admin_response {
    int status = 404;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

/// GET/HEAD /healthz -> 200 "ok"; /readyz -> 200 "ready" or 503 "draining"; /metrics ->
/// Prometheus text 0.0.4; other paths 404, other methods 405. The query string is ignored.
admin_response admin_route(std::string_view method, std::string_view target,
                           const admin_state& state);

/// Serves one admin connection (keep-alive; 8 KiB heads, no bodies) until it closes or idles
/// for 60 s. Never throws for network outcomes.
net::awaitable<void> run_admin_session(net::ip::tcp::socket socket, const admin_state& state);

}  // namespace clerk::proxy
