#pragma once
// The authentication decision of one request, shared by the HTTP/1.1 session and the HTTP/2
// streams (one code path for the decision): route and token (core::pre_authenticate), the
// authenticator (cache, then Clerk or local JWT verification), the route policy
// (core::post_authenticate), and the decision metrics.
#include "core/auth_decision.hpp"
#include "core/identity.hpp"
#include "core/verification_cache.hpp"
#include "proxy/net/net.hpp"

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace clerk::proxy {

struct runtime;
class metrics;

struct request_auth {
    core::auth_decision decision;              ///< allow, or the refusal to render
    std::shared_ptr<const core::identity> id;  ///< set when allowed with a token
    std::optional<core::token_type> token_type;
    std::optional<core::cache_result> cache;
};

/// The decision when it needs no I/O: no token required, or the authenticator answers at once
/// (authenticator::authenticate_bearer_now: a cached token, a negatively cached one, a token
/// refused by its shape). nullopt: await authorize_request. Metrics as authorize_request.
std::optional<request_auth> authorize_request_now(
    const runtime& rt, metrics& m, std::string_view method, std::string_view path,
    const std::vector<std::string_view>& authorization);

/// Decides `method` `path` (normalized) with the request's Authorization values under the
/// snapshot `rt`. The values must stay valid until the awaitable completes. Never throws for
/// expected outcomes; bounded by the Clerk retry budget of the snapshot's config.
task<request_auth> authorize_request(const runtime& rt, metrics& m, std::string_view method,
                                     std::string_view path,
                                     const std::vector<std::string_view>& authorization);

}  // namespace clerk::proxy
