#pragma once
// TLS contexts: the listener's (tls.cert_file/key_file) and the upstream client's
// (peer and host-name verification by default, upstream.ca_file, tls_verify: false).
#include "config/config.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace clerk::proxy {

/// TLS 1.2+ server context from PEM files. nullptr and `error` set on failure. The context is
/// immutable after creation and may be shared by all connections (OpenSSL SSL_CTX is
/// thread-safe for that use). ALPN: `h2` is selected when `http2` and the client offers it,
/// else `http/1.1` (a client offering neither gets no ALPN answer and speaks HTTP/1.1).
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const config::tls_config& cfg,
                                                                   std::string& error,
                                                                   bool http2 = false);

/// The protocol ALPN selected on an established TLS connection ("" when none).
std::string_view alpn_selected(const void* ssl_handle);

/// TLS 1.2+ client context for an outbound connection (the upstream, Clerk, Redis): system trust
/// store plus `cfg.ca_file`, peer verification unless tls_verify is false, ALPN h2 for
/// protocol h2. Host-name verification and SNI are per connection (upstream_pool). nullptr and
/// `error` set on failure; `ca_key` names the CA file's config key in the message.
std::shared_ptr<boost::asio::ssl::context> make_upstream_tls_context(
    const config::upstream_config& cfg, std::string& error,
    std::string_view ca_key = "upstream.ca_file");

}  // namespace clerk::proxy
