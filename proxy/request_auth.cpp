#include "proxy/request_auth.hpp"

#include "core/request_decision.hpp"
#include "proxy/metrics.hpp"
#include "proxy/runtime.hpp"

#include <algorithm>
#include <chrono>

namespace clerk::proxy {
namespace {

using clock = std::chrono::steady_clock;

/// The whole verification may retry (clerk.retries) with backoff; the deadline bounds it so a
/// Clerk outage costs a caller at most this long (userver-style deadline propagation).
clock::duration auth_budget(const config::config& cfg) {
    const auto attempts = static_cast<long>(std::max(cfg.clerk.retries, 0)) + 1;
    const auto budget =
        cfg.clerk.timeout * attempts + std::chrono::milliseconds(250) * (attempts - 1);
    return std::min<clock::duration>(budget, std::chrono::seconds(30));
}

}  // namespace

net::awaitable<request_auth> authorize_request(const runtime& rt, metrics& m,
                                               std::string_view method, std::string_view path,
                                               const std::vector<std::string_view>& authorization) {
    const auto& cfg = *rt.cfg;
    request_auth out;
    // The token is classified by the authenticator after its cache lookup (classify=false):
    // a cached token, JWT or opaque, costs its digest and nothing else.
    const auto pre = core::pre_authenticate(cfg.routes, cfg.auth.accepts, method, path,
                                            authorization, /*classify=*/false);
    if (!pre.needs_verification) {
        if (!pre.decision.allowed()) {
            m.auth_decision(pre.decision.kind);
        }
        out.decision = pre.decision;
        co_return out;
    }
    const auto r = co_await rt.auth->authenticate_bearer(pre.token, cfg.auth.accepts,
                                                         clock::now() + auth_budget(cfg));
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
    co_return out;
}

}  // namespace clerk::proxy
