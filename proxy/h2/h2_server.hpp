#pragma once
// INTERNAL (Beast-heavy): include from proxy/ sources only.
//
// HTTP/2 on the listener (http2: true): one downstream connection driven with nghttp2 from
// Asio — bytes read are fed to nghttp2_session_mem_recv, what nghttp2_session_mem_send gives is
// written. Every stream is one request decided by the same engine as HTTP/1.1
// (proxy/auth/request_auth.hpp), then forwarded to the upstream over HTTP/1.1 or HTTP/2
// (upstream.protocol), bodies streamed both ways under HTTP/2 flow control.
#include "proxy/http/session.hpp"
#include "proxy/net/any_stream.hpp"

#include <boost/beast/core/flat_buffer.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace clerk::proxy {

/// The client connection preface (RFC 9113 §3.4).
inline constexpr std::string_view h2_client_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

class h2_server_connection;

/// Serves HTTP/2 on `io` until the connection ends. `buffer` holds the bytes already read (the
/// client preface first, with prior knowledge; nothing yet after ALPN). Returns only when every
/// stream it started has finished. `on_start` receives the connection (for drain requests,
/// h2_close_if_idle) before any I/O. `io`, `buffer` and `env` must outlive the call.
task<void> serve_h2(any_stream& io, beast::flat_buffer& buffer, const session_env& env,
                    std::string peer_ip, bool tls, std::uint64_t conn_id,
                    std::shared_ptr<h2_server_connection>& handle);

/// Drain: closes the connection now when no stream is open, else announces GOAWAY and closes
/// when the open streams are done. Call on the connection's loop.
void h2_close_if_idle(h2_server_connection& c);
/// Closes the connection now (drain timeout). Call on the connection's loop.
void h2_close_now(h2_server_connection& c);

}  // namespace clerk::proxy
