// The checks that span several keys, run once the whole file was walked (see loader.hpp).
#include "config/loader.hpp"
#include "config/values.hpp"

namespace clerk::config {

void loader::cross_checks(config& cfg) {
    // tls: both files or neither.
    const bool cert = !cfg.tls.cert_file.empty() || r_.failed("tls.cert_file");
    const bool key = !cfg.tls.key_file.empty() || r_.failed("tls.key_file");
    if (cert && !key) {
        r_.error(r_.line_for("tls", root_line_), "tls.key_file", "required with tls.cert_file");
    } else if (key && !cert) {
        r_.error(r_.line_for("tls", root_line_), "tls.cert_file", "required with tls.key_file");
    }

    if (cfg.mode == proxy_mode::proxy && cfg.upstream.url.empty() && !r_.failed("upstream.url")) {
        r_.error(r_.line_for("upstream.url", r_.line_for("upstream", root_line_)), "upstream.url",
                 "required in proxy mode");
    }
    if (const int at = r_.line_for("upstream", -1);
        cfg.mode == proxy_mode::forward_auth && at != -1) {
        // A gateway sends the traffic on; an upstream here would be silently ignored.
        r_.error(at, "upstream",
                 "not allowed in forward_auth mode (the gateway forwards the request; remove "
                 "the upstream section or use mode: proxy)");
    }
    // h2 is negotiated by ALPN inside TLS; h2c is HTTP/2 in the clear (TCP or unix socket).
    if (const int at = r_.line_for("upstream.protocol", -1); at != -1) {
        if (cfg.upstream.protocol == upstream_protocol::h2 &&
            cfg.upstream.scheme != upstream_scheme::https && !r_.failed("upstream.url")) {
            r_.error(at, "upstream.protocol",
                     "h2 needs an https:// upstream.url (use h2c for http://)");
        } else if (cfg.upstream.protocol == upstream_protocol::h2c &&
                   cfg.upstream.scheme == upstream_scheme::https) {
            r_.error(at, "upstream.protocol",
                     "h2c is cleartext: use h2 with an https:// upstream.url");
        }
    }
    if (cfg.upstream.scheme == upstream_scheme::https && !cfg.upstream.tls_verify) {
        cfg.warnings.push_back(
            "upstream.tls_verify is false: the upstream's certificate is not verified");
    }

    if (cfg.clerk.machine_secret_key.empty() && cfg.clerk.secret_key.empty() &&
        !r_.failed("clerk.machine_secret_key") && !r_.failed("clerk.secret_key")) {
        r_.error(r_.line_for("clerk", root_line_), "clerk.machine_secret_key",
                 "one of clerk.machine_secret_key or clerk.secret_key must be set");
    }
    // API keys and opaque OAuth tokens are verified with the instance secret key only, and
    // session and OAuth JWTs need its JWKS (docs/reference.md §12).
    const auto& accepts = cfg.auth.accepts;
    if ((accepts.any || accepts.accepts(core::token_type::api_key) ||
         accepts.accepts(core::token_type::oauth_token)) &&
        cfg.clerk.secret_key.empty() && !r_.failed("clerk.secret_key") &&
        !r_.failed("auth.accepts_token")) {
        r_.error(r_.line_for("clerk", root_line_), "clerk.secret_key",
                 "required when auth.accepts_token includes api_key, oauth_token or any (Clerk "
                 "verifies them with the instance secret key)");
    }
    const bool jwt_keys = !cfg.clerk.jwt_key.empty() || !cfg.clerk.secret_key.empty();
    if (!accepts.any && accepts.accepts(core::token_type::session_token) && !jwt_keys &&
        !r_.failed("clerk.secret_key") && !r_.failed("clerk.jwt_key") &&
        !r_.failed("auth.accepts_token")) {
        r_.error(r_.line_for("clerk", root_line_), "clerk.jwt_key",
                 "clerk.jwt_key or clerk.secret_key is required when auth.accepts_token includes "
                 "session_token (session tokens are verified with the instance's signing key)");
    }
    if (!cfg.clerk.api_url_is_https && !is_loopback_host(cfg.clerk.api_host)) {
        cfg.warnings.push_back("clerk.api_url uses http:// to non-loopback host \"" +
                               cfg.clerk.api_host +
                               "\": tokens and keys would cross the network unencrypted");
    }

    // Recipient scoping (docs/reference.md §12): a JWT is verified locally, so nobody checks that
    // it was minted for this service unless auth.audience says who this service is.
    if (cfg.auth.accepts.accepts(core::token_type::m2m_token) && jwt_keys &&
        cfg.auth.audience.empty() && !r_.failed("auth.audience")) {
        cfg.warnings.push_back(
            "auth.audience is not set: any machine of the Clerk instance can call this service "
            "with an M2M JWT, scoped to it or not; set auth.audience to this service's machine "
            "id, e.g. audience: [\"${CLERK_MACHINE_ID}\"]");
    }
    // OAuth access tokens in JWT format are verified locally too: their `aud` is the only
    // recipient check, and only when auth.audience is set.
    if (cfg.auth.accepts.accepts(core::token_type::oauth_token) && jwt_keys &&
        cfg.auth.audience.empty() && !r_.failed("auth.audience")) {
        cfg.warnings.push_back(
            "auth.audience is not set: an OAuth access token in JWT format issued for any "
            "audience of the Clerk instance is accepted; set auth.audience to this service's "
            "identifier(s)");
    }
    if (cfg.auth.accepts.accepts(core::token_type::session_token) &&
        cfg.auth.authorized_parties.empty() && !r_.failed("auth.authorized_parties")) {
        cfg.warnings.push_back(
            "auth.authorized_parties is not set: a session token issued to any origin of the "
            "Clerk instance (its azp claim) is accepted; list this service's front-end origins, "
            "e.g. authorized_parties: [\"https://app.example.com\"]");
    }

    if (cfg.admin.listen && cfg.admin.listen->port != 0 &&
        cfg.admin.listen->port == cfg.listen.port && cfg.admin.listen->host == cfg.listen.host) {
        r_.error(r_.line_for("admin.listen", root_line_), "admin.listen",
                 "must differ from listen (the admin endpoints never share the main listener)");
    }
    header_name_checks(cfg.headers);
}

}  // namespace clerk::config
