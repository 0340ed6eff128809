#pragma once
// The validated, immutable configuration (docs/reference.md §3). Plain structs; defaults in the
// initialisers are the documented defaults. Built only by load.hpp; shared as
// std::shared_ptr<const config> snapshots (SIGHUP swaps the pointer).
#include "core/header_rules.hpp"
#include "core/request_decision.hpp"
#include "core/route.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace clerk::config {

using millis = std::chrono::milliseconds;

enum class proxy_mode { proxy, forward_auth };

struct listen_address {
    std::string host;        ///< "0.0.0.0", "::", "127.0.0.1", "localhost" (brackets removed)
    std::uint16_t port = 0;  ///< 0 = pick a free port (logged)
    std::string text;        ///< as written, for logs
};

struct tls_config {
    std::string cert_file;
    std::string key_file;
    bool enabled() const { return !cert_file.empty(); }
};

enum class upstream_scheme { http, https, unix_socket };

/// How the proxy speaks to the upstream: HTTP/1.1, HTTP/2 with prior knowledge over cleartext
/// (h2c), or HTTP/2 over TLS selected by ALPN (h2).
enum class upstream_protocol { http1, h2c, h2 };

struct upstream_config {
    std::string url;
    upstream_scheme scheme = upstream_scheme::http;
    std::string host;         ///< http/https host (no brackets)
    std::uint16_t port = 0;   ///< defaults 80/443
    std::string host_header;  ///< "host:port" as Host when preserve_host is false
    std::string base_path;    ///< path prefix from the URL ("" or "/v1"), no trailing '/'
    std::string unix_path;    ///< for unix:
    millis connect_timeout{2000};
    millis timeout{60000};
    std::size_t max_idle_connections = 128;
    bool preserve_host = true;
    bool tls_verify = true;
    std::string ca_file;
    upstream_protocol protocol = upstream_protocol::http1;
};

struct clerk_config {
    std::string api_url = "https://api.clerk.com";  ///< no trailing '/'
    bool api_url_is_https = true;
    std::string api_host;  ///< parsed from api_url
    std::uint16_t api_port = 443;
    std::string api_base_path;  ///< path prefix of api_url ("" normally)
    std::string api_version = "2026-05-12";
    std::string ca_file;
    std::string machine_secret_key;
    std::string secret_key;
    millis timeout{2000};
    int retries = 2;
    std::string jwt_key;  ///< PEM text
    /// The key for POST /m2m_tokens/verify: machine key, else instance key.
    const std::string& verify_key() const {
        return machine_secret_key.empty() ? secret_key : machine_secret_key;
    }
};

struct auth_config {
    core::token_acceptance accepts;
    bool forward_authorization = false;
    millis clock_skew{5000};
    /// Recipient scoping of locally verified JWTs: their `aud` must overlap this list. Empty =
    /// not checked (a start-up warning says what that allows).
    std::vector<std::string> audience;
    /// Session tokens: their `azp` must be one of these origins. Empty = not checked (a
    /// start-up warning says what that allows).
    std::vector<std::string> authorized_parties;
};

enum class redis_transport { tcp, tls, unix_socket };

/// cache.shared (docs/reference.md §15): verification results shared by replicas through Redis.
struct shared_cache_config {
    std::string redis_url;  ///< "" = off. Holds the password: never logged or printed
    redis_transport transport = redis_transport::tcp;
    std::string host;  ///< tcp/tls (brackets removed)
    std::uint16_t port = 6379;
    std::string path;      ///< unix socket
    std::string username;  ///< AUTH username (Redis 6 ACL), optional
    std::string password;  ///< AUTH password, optional
    int db = 0;
    std::string key_prefix = "clerk-m2m-proxy:";
    millis timeout{50};
    std::string ca_file;
    bool enabled() const { return !redis_url.empty(); }
};

struct cache_config {
    std::size_t max_entries = 100000;
    millis ttl{60000};
    millis negative_ttl{10000};
    millis stale_if_error{0};
    /// Clerk verification calls per second for tokens not in the cache (a token bucket holding
    /// one second's worth); past it 503 miss_rate_limited. 0 = unlimited.
    std::uint64_t max_miss_rate = 0;
    shared_cache_config shared;
};

struct admin_config {
    std::optional<listen_address> listen;  ///< nullopt when "" (disabled)
};

struct limits_config {
    std::size_t max_header_bytes = 16384;
    std::uint64_t max_body_bytes = 0;  ///< 0 = unlimited
    millis header_timeout{10000};
    millis idle_timeout{60000};
    std::size_t max_connections = 10000;
    /// HTTP/2: concurrent streams per connection, advertised in SETTINGS; beyond it a new stream
    /// is reset with REFUSED_STREAM.
    std::size_t max_concurrent_streams = 100;
    /// Slow clients (slowloris bodies, slow readers): the time a body transfer spends blocked on
    /// the client may be at most header_timeout + bytes / min_body_rate. 0 = no rate check
    /// (each read or write is still bounded by idle_timeout).
    std::uint64_t min_body_rate = 1024;
    /// WebSocket tunnels: closed after this long without a byte either way, and (when > 0)
    /// this long after the upgrade whatever the traffic.
    millis tunnel_idle_timeout{3600000};
    millis tunnel_max_lifetime{0};  ///< 0 = unbounded
};

struct shutdown_config {
    millis drain_timeout{15000};
};

enum class log_level { trace, debug, info, warn, error };
enum class log_format { json, text };

struct log_config {
    log_level level = log_level::info;
    log_format format = log_format::json;
    bool access_log = true;
};

struct config {
    std::string source_path;  ///< file it was loaded from
    proxy_mode mode = proxy_mode::proxy;
    listen_address listen{"0.0.0.0", 8080, "0.0.0.0:8080"};
    tls_config tls;
    upstream_config upstream;
    clerk_config clerk;
    auth_config auth;
    cache_config cache;
    core::identity_header_names headers;
    std::vector<core::route> routes;
    admin_config admin{listen_address{"127.0.0.1", 9901, "127.0.0.1:9901"}};
    limits_config limits;
    shutdown_config shutdown;
    log_config log;
    unsigned threads = 0;  ///< 0 = hardware concurrency
    /// Accept HTTP/2 besides HTTP/1.1 on the listener: ALPN h2 with TLS, prior knowledge on
    /// cleartext.
    bool http2 = false;
    /// Non-fatal findings to log at start (e.g. http:// api_url off loopback).
    std::vector<std::string> warnings;
};

}  // namespace clerk::config
