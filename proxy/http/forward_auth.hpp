#pragma once
// INTERNAL: include from proxy/ sources only (Beast fields).
//
// Forward-auth mode (`mode: forward_auth`): a gateway (nginx auth_request, Caddy forward_auth,
// Traefik ForwardAuth, Envoy ext_authz) asks whether an original request may pass. These are
// the two pure parts of it, tested without sockets: which original method and URI a check
// request describes, and the 200 answer that carries the verified identity.
#include "core/header_rules.hpp"
#include "core/identity.hpp"

#include "proxy/http/header_fields.hpp"

#include <string>
#include <string_view>

namespace clerk::proxy {

/// The original request a check request describes. `reason` is empty when it could be told,
/// else the 400 reason (the views point into the check request's head).
struct original_request {
    std::string_view method;
    std::string_view target;
    std::string_view reason;
};

/// The original method and URI, in this order: X-Forwarded-Method + X-Forwarded-Uri (Traefik,
/// Caddy), X-Original-Method + X-Original-URI (nginx auth_request) or, without it,
/// X-Original-URL (ingress-nginx: an absolute URL whose path and query are taken), else the
/// check request's own
/// method and target (Envoy ext_authz). The family is chosen by its URI header; its method
/// header, when absent, defaults to the check request's method. A repeated or empty header of
/// the chosen family, or a method that is not an HTTP token, is a 400 (a gateway sends each
/// once; two would let a client choose which one the rules see).
original_request original_request_of(const header_fields& check, std::string_view check_method,
                                     std::string_view check_target);

/// Appends the whole head of the positive answer to a check: status line, `Content-Length: 0`,
/// `Cache-Control: no-store`, X-Request-Id, every configured identity header exactly once (the
/// values of `id`; empty for what it lacks, all empty without `id`; never a client's copy:
/// nothing of the check request is echoed), `Connection: close` unless
/// `keep_alive` (HTTP/1.0: `Connection: keep-alive` when `keep_alive`), the blank line.
/// `version` is 10 or 11; `scratch` is reused storage.
void append_check_allowed(std::string& out, unsigned version, bool keep_alive,
                          std::string_view request_id, const core::header_rules& rules,
                          const core::identity* id, std::string& scratch);

}  // namespace clerk::proxy
