#pragma once
// INTERNAL (Beast-heavy): include from proxy/h2/*.cpp only.
//
// An HTTP/2 stream forwarded to an HTTP/1.1 upstream (upstream.protocol: http1): the request
// head written from the stream's fields with the HTTP/1.1 rewrite rules
// (append_request_headers), the body streamed from the stream's pipe (Content-Length when the
// client gave one, else chunked), the response head translated to HTTP/2 fields and its body
// streamed into the response pipe, waiting while the client's window is closed.
#include "proxy/h2/h2_stream.hpp"
#include "proxy/http/message_rules.hpp"

#include <functional>
#include <string_view>

namespace clerk::proxy::h2 {

/// Returns allow once the response was relayed (or reset mid-body), else the refusal to render
/// (no response started): upstream_unavailable, upstream_timeout, body_too_large. `cancel` is
/// set, while an upstream connection is in use, to a function that closes it (the client went
/// away).
task<core::auth_decision> forward_h1(stream_io& io, upstream_pool& pool, std::string_view method,
                                     std::string_view target, const header_fields& fields,
                                     const forward_params& fp, std::function<void()>& cancel);

}  // namespace clerk::proxy::h2
