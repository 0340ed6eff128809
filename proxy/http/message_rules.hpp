#pragma once
// The HTTP message rules of the data path (docs/reference.md §5), as functions over Beast header
// containers so that they are tested without sockets: request framing checks (smuggling), the
// request id, and the header rewrite in both directions.
//
// Includes <boost/beast/http/fields.hpp>: include this header from .cpp files only.
#include "config/config.hpp"
#include "core/auth_decision.hpp"
#include "core/header_rules.hpp"
#include "core/identity.hpp"

#include "proxy/http/header_fields.hpp"

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace clerk::proxy {

/// How a request's body is framed, once the head has been validated.
struct request_framing {
    bool chunked = false;
    std::optional<std::uint64_t> content_length;  ///< set iff Content-Length was given
    bool has_body() const { return chunked || (content_length && *content_length > 0); }
};

/// Validates the framing and routing headers of a parsed request head (RFC 9112 §6, §3.2):
/// Content-Length together with Transfer-Encoding, a Content-Length that is not one decimal
/// number (duplicates must agree), Transfer-Encoding other than exactly `chunked`, a missing
/// (HTTP/1.1) or repeated Host -> bad_request with a static reason. A Content-Length above
/// `max_body_bytes` (0 = unlimited) -> body_too_large. `version` is 10 or 11.
core::auth_decision check_request_framing(const header_fields& h, unsigned version,
                                          std::uint64_t max_body_bytes, request_framing& out);

/// A WebSocket opening handshake (RFC 6455 §4.1) the proxy may tunnel: HTTP/1.1 GET whose
/// Upgrade header lists `websocket` and whose Connection header lists `upgrade` (both
/// case-insensitive). Any other Upgrade (h2c, …) is not one: it is stripped like any hop-by-hop
/// header.
bool is_websocket_upgrade(const header_fields& h, unsigned version, std::string_view method);

/// A parse error (the peer sent bytes that are not HTTP) as opposed to a transport outcome.
/// end_of_stream and partial_message are in Beast's HTTP category but mean "the peer went away".
bool is_parse_error(const boost::system::error_code& ec);

/// True for a client X-Request-Id worth keeping: 1..128 chars of [A-Za-z0-9._-].
bool is_sane_request_id(std::string_view id);

/// 128 bits of a per-thread generator (seeded once from the OS CSPRNG) as 32 lower-case hex
/// characters. Thread safety: any thread. The out-parameter form reuses `out`'s storage.
std::string generate_request_id();
void generate_request_id(std::string& out);

/// The client's X-Request-Id when there is exactly one and it is sane, else a new one.
std::string request_id_for(const header_fields& h);
void request_id_for(const header_fields& h, std::string& out);

/// Everything the request rewrite needs besides the incoming headers.
struct forward_params {
    const core::header_rules* rules = nullptr;
    const core::identity* id = nullptr;  ///< nullptr: not authenticated (auth: none)
    bool forward_authorization = false;
    bool preserve_host = true;
    std::string_view upstream_host;  ///< Host when !preserve_host (or the client sent none)
    std::string_view peer_ip;        ///< appended to X-Forwarded-For
    bool downstream_tls = false;     ///< X-Forwarded-Proto https/http
    std::string_view request_id;
    /// A WebSocket upgrade being forwarded: `Connection: upgrade` and `Upgrade: websocket`, the
    /// only hop-by-hop headers kept, are added.
    bool websocket_upgrade = false;
};

/// The parameters of one request forwarded under `cfg` (auth.forward_authorization,
/// upstream.preserve_host and host header) with `rules`; websocket_upgrade is left false.
forward_params forward_params_for(const core::header_rules& rules, const config::config& cfg,
                                  const core::identity* id, std::string_view peer_ip,
                                  bool downstream_tls, std::string_view request_id);

/// Builds the upstream request headers from the client's: drops hop-by-hop headers, those named
/// in Connection, every identity header (all routes, auth: none included), Content-Length and
/// Transfer-Encoding (the caller sets the framing), and Authorization unless forwarded; then
/// adds the verified identity headers, X-Forwarded-For (appended), X-Forwarded-Proto,
/// X-Forwarded-Host (the client's Host), Host and X-Request-Id.
void rewrite_request_headers(const header_fields& in, header_fields& out, const forward_params& p);

/// The same fields, appended to `out` as "Name: value\r\n" lines (the request head being
/// serialized; the caller adds the framing field and the blank line). Allocation-free in the
/// steady state: `scratch` (reused by the caller) holds built values.
void append_request_headers(const header_fields& in, const forward_params& p, std::string& out,
                            std::string& scratch);

/// Builds the client response headers from the upstream's: drops hop-by-hop headers and those
/// named in Connection, Content-Length and Transfer-Encoding (the caller sets the framing), and
/// sets X-Request-Id.
void rewrite_response_headers(const header_fields& in, header_fields& out,
                              std::string_view request_id);

/// The same fields appended to `out` as "Name: value\r\n" lines (see append_request_headers).
/// `switching` (an upstream 101 to a WebSocket upgrade): `Connection: upgrade` and
/// `Upgrade: websocket` are added.
void append_response_headers(const header_fields& in, std::string_view request_id, std::string& out,
                             bool switching = false);

}  // namespace clerk::proxy
