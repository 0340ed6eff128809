#pragma once
// The HTTP(S) client to Clerk's Backend API: one small pool of kept-alive connections per
// authenticator (docs/reference.md §4 "One kept-alive TLS connection pool to Clerk"). Beast stays
// in the .cpp; this header is the seam the verifier and its tests code against.
#include "config/config.hpp"
#include "proxy/net/net.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace clerk::proxy {

/// Why a call produced no HTTP status.
enum class clerk_transport_error {
    none,     ///< a response was read (status != 0)
    timeout,  ///< the per-call deadline passed (resolve, connect, TLS, write or read)
    connect,  ///< resolve or TCP connect failed
    tls,      ///< TLS handshake failed (certificate, host name, protocol)
    io,       ///< the connection failed or closed mid-exchange, or the response was unparseable
};

std::string_view to_string(clerk_transport_error e);

struct clerk_http_request {
    enum class method { get, post } verb = method::post;
    std::string path;  ///< e.g. "/m2m_tokens/verify"; api_base_path is prepended by the client
    std::string body;  ///< JSON; empty for GET
    std::string_view bearer;  ///< the secret key for Authorization; must outlive the call
};

struct clerk_http_reply {
    int status = 0;  ///< HTTP status, 0 when `error` != none
    clerk_transport_error error = clerk_transport_error::none;
    std::string retry_after;  ///< raw Retry-After header value, "" when absent
    std::string body;
};

/// One request/response exchange with Clerk. Thread safety: call() may be invoked concurrently
/// from any thread or strand. Contract: never throws for network outcomes (they are values);
/// completes by `deadline` (plus scheduling slack). The caller owns retries and backoff.
class clerk_api {
public:
    virtual ~clerk_api() = default;
    virtual net::awaitable<clerk_http_reply> call(
        clerk_http_request req, std::chrono::steady_clock::time_point deadline) = 0;
    /// Drops idle pooled connections (shutdown/reload). Default: nothing.
    virtual void close_idle() {}
};

/// The production clerk_api over TCP or TLS (OpenSSL), connecting through the proxy's one
/// outbound connector (upstream_pool): the system CA store plus clerk.ca_file, peer
/// verification, host-name verification and SNI, resolve and connect within the call's
/// deadline. Keeps up to `max_idle` kept-alive connections; a pooled connection that turns out
/// closed before any response byte is retried once on a fresh connection (invisible to the
/// caller). An unusable clerk.ca_file is logged and makes every call fail (fail closed, 503).
/// Its sockets live on the event loop of `exec`, where each exchange runs. Lifetime: destroy
/// before the execution context behind `exec`.
std::shared_ptr<clerk_api> make_clerk_client(net::any_io_executor exec,
                                             const config::clerk_config& cfg,
                                             std::size_t max_idle = 8);

}  // namespace clerk::proxy
