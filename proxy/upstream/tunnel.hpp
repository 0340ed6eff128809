#pragma once
// INTERNAL (Beast-heavy): include from proxy/ sources only.
//
// The byte tunnel of an upgraded connection (WebSocket, docs/reference.md §13): after the
// upstream's 101 the proxy copies bytes both ways without parsing frames, until either side closes
// (then it closes the other), no byte moved either way for `idle_timeout`, or `deadline` passes
// (tunnel_max_lifetime, the token's expiration).
#include "proxy/http/exchange.hpp"
#include "proxy/metrics.hpp"
#include "proxy/net/any_stream.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>

namespace clerk::proxy {

struct tunnel_limits {
    std::chrono::steady_clock::duration idle_timeout;
    std::chrono::steady_clock::time_point deadline;  ///< time_point::max() = none
};

struct tunnel_result {
    std::uint64_t to_upstream = 0;  ///< bytes client -> upstream (buffered ones included)
    std::uint64_t to_client = 0;    ///< bytes upstream -> client
    std::string_view end;           ///< client_closed, upstream_closed, idle, deadline
};

/// Runs the tunnel to its end; both streams are closed when it returns. `client_pending` and
/// `upstream_pending` hold bytes already read past the handshake (sent on first). Each
/// direction copies through its own 16 KiB buffer, allocated for the tunnel's life: an idle
/// tunnel costs its two sockets and 32 KiB.
task<tunnel_result> run_tunnel(any_stream& client, beast::flat_buffer& client_pending,
                               any_stream& upstream, beast::flat_buffer& upstream_pending,
                               const tunnel_limits& limits);

/// The upgrade half of the relay: writes the upstream's 101 (`response`, its fields rewritten
/// with `Connection: upgrade` and `Upgrade: websocket`) to the client, counts it, and runs the
/// tunnel with the limits of `ex.rt.cfg` and the identity's expiration; records the tunnel's
/// bytes in `ex`. False when the 101 could not be written. The caller discards `upstream`; the
/// client connection ends with the tunnel.
task<bool> serve_upgrade(exchange& ex, const http::response_header<header_fields>& response,
                         any_stream& upstream, metrics& m);

}  // namespace clerk::proxy
