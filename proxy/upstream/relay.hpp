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

/// Runs the exchange against `pool`: relayed when a response (or a tunnel) went to the client
/// (ex.keep_alive then says whether the connection goes on), client_gone when the client
/// connection broke or was cut, or refused with what the session must answer itself because
/// nothing of a response was written: upstream_unavailable (connect failed, upstream closed or
/// answered something that is not HTTP), upstream_timeout (no response head within
/// upstream.timeout), body_too_large (a chunked body crossed max_body_bytes), bad_request (a
/// malformed request body). Never throws for network outcomes.
task<forward_result> forward_request(exchange& ex, upstream_pool& pool, metrics& m);

}  // namespace clerk::proxy
