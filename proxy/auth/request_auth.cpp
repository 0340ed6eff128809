#include "proxy/auth/request_auth.hpp"

#include "core/request_decision.hpp"
#include "proxy/auth/clerk_verifier.hpp"
#include "proxy/metrics.hpp"
#include "proxy/runtime.hpp"

#include <algorithm>
#include <chrono>

namespace clerk::proxy {
namespace {

using clock = std::chrono::steady_clock;

/// The authenticator's answer `r` for the token `pre` found, through the route policy.
request_auth conclude(const core::pre_auth& pre, const auth_result& r, metrics& m) {
    request_auth out;
    out.token_type = r.type;
    out.cache = r.cache;
    core::auth_decision d = r.decision;
    if (d.allowed() && !r.id) {
        d = {core::decision_kind::auth_unavailable, "no_identity"};  // fail closed
    }
    if (d.allowed()) {
        out.id = r.id;
        out.token_type = r.id->type;
        d = core::post_authenticate(pre.matched, *r.id);
    }
    m.auth_decision(d.kind, out.token_type);
    out.decision = d;
    return out;
}

/// Route and token; a decision when no token needs verifying.
std::optional<request_auth> decided_before_token(const core::pre_auth& pre, metrics& m) {
    if (pre.needs_verification) {
        return std::nullopt;
    }
    if (!pre.decision.allowed()) {
        m.auth_decision(pre.decision.kind);
    }
    request_auth out;
    out.decision = pre.decision;
    return out;
}

// The token is classified by the authenticator after its cache lookup (classify=false):
// a cached token, JWT or opaque, costs its digest and nothing else.
core::pre_auth route_and_token(const config::config& cfg, std::string_view method,
                               std::string_view path,
                               const std::vector<std::string_view>& authorization) {
    return core::pre_authenticate(cfg.routes, cfg.auth.accepts, method, path, authorization,
                                  /*classify=*/false);
}

}  // namespace

std::optional<request_auth> authorize_request_now(
    const runtime& rt, metrics& m, std::string_view method, std::string_view path,
    const std::vector<std::string_view>& authorization) {
    const auto& cfg = *rt.cfg;
    const auto pre = route_and_token(cfg, method, path, authorization);
    if (auto d = decided_before_token(pre, m)) {
        return d;
    }
    if (auto r = rt.auth->authenticate_bearer_now(pre.token, cfg.auth.accepts)) {
        return conclude(pre, *r, m);
    }
    return std::nullopt;
}

task<request_auth> authorize_request(const runtime& rt, metrics& m, std::string_view method,
                                     std::string_view path,
                                     const std::vector<std::string_view>& authorization) {
    const auto& cfg = *rt.cfg;
    const auto pre = route_and_token(cfg, method, path, authorization);
    if (auto d = decided_before_token(pre, m)) {
        co_return std::move(*d);
    }
    const auto r = co_await rt.auth->authenticate_bearer(
        pre.token, cfg.auth.accepts, clock::now() + clerk_verifier::budget(cfg.clerk));
    co_return conclude(pre, r, m);
}

}  // namespace clerk::proxy
