#pragma once
// INTERNAL: include from proxy/ sources only (uses proxy/http/exchange.hpp).
//
// Forwards one authorized request to the upstream and relays the response (docs/reference.md §1
// step 8, §5): pooled connection, header rewrite, Expect: 100-continue, request and response bodies
// streamed in bounded chunks both ways (Beast's relay() shape), one retry on a fresh connection
// when a pooled one turns out dead.
#include "core/auth_decision.hpp"
#include "proxy/http/exchange.hpp"
#include "proxy/metrics.hpp"
#include "proxy/upstream/upstream_pool.hpp"

namespace clerk::proxy {

/// Runs the exchange against `pool`. Returns allow when a response was relayed (or the client
/// broke: ex.client_failed), or the refusal the session must render itself because no response
/// has started: upstream_unavailable (connect failed, upstream reset), upstream_timeout (no
/// response head within upstream.timeout), body_too_large (a chunked body crossed
/// max_body_bytes). Never throws for network outcomes.
task<core::auth_decision> forward_request(exchange& ex, upstream_pool& pool, metrics& m);

}  // namespace clerk::proxy
