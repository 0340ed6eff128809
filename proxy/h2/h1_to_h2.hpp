#pragma once
// INTERNAL (Beast-heavy): include from proxy/ sources only (uses proxy/http/exchange.hpp).
//
// HTTP/1.1 clients in front of an HTTP/2 upstream (upstream.protocol h2c or h2).
#include "core/auth_decision.hpp"
#include "proxy/http/exchange.hpp"
#include "proxy/upstream/upstream_pool.hpp"

namespace clerk::proxy {

/// forward_request()'s contract (proxy/upstream/relay.hpp) over a multiplexed HTTP/2 upstream
/// connection: relayed, client_gone, or refused with the answer to render (upstream_unavailable,
/// upstream_timeout, body_too_large). A WebSocket upgrade cannot cross HTTP/2 here: 502
/// upgrade_not_supported.
task<forward_result> forward_via_h2(exchange& ex, upstream_pool& pool);

}  // namespace clerk::proxy
