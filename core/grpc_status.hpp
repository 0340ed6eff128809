#pragma once
// gRPC-aware refusals: a refused request whose content-type is application/grpc* is answered
// the way a gRPC client understands (HTTP 200, trailers-only, grpc-status and grpc-message), not
// with a JSON body it would report as an opaque protocol error. Pure.
#include "core/auth_decision.hpp"

#include <string>
#include <string_view>

namespace clerk::core {

/// True when a request's content-type names a gRPC protocol ("application/grpc",
/// "application/grpc+proto", "application/grpc-web", ...; case-insensitive).
bool is_grpc_content_type(std::string_view content_type);

/// The gRPC status code for an HTTP refusal status: 401 -> 16 UNAUTHENTICATED, 403 -> 7
/// PERMISSION_DENIED, 502/503 -> 14 UNAVAILABLE, 504 -> 4 DEADLINE_EXCEEDED, 400 -> 3
/// INVALID_ARGUMENT, 413/431 -> 8 RESOURCE_EXHAUSTED; anything else -> 2 UNKNOWN.
int grpc_status_for_http(int http_status);

/// grpc-message: "<error>: <reason>" (or "<error>"), percent-encoded as the gRPC HTTP/2 spec
/// asks (every byte outside 0x20..0x7E, and '%', as %XX).
std::string grpc_message_for(decision_kind kind, std::string_view reason);

/// Percent-encodes `text` for a grpc-message value.
std::string grpc_percent_encode(std::string_view text);

}  // namespace clerk::core
