#pragma once
// The seam between the data path (session) and token verification (Clerk client, JWT, cache).
// Shape after Envoy ext_authz's Client: one async check, the outcome as a value.
#include "core/auth_decision.hpp"
#include "core/bearer_token.hpp"
#include "core/identity.hpp"
#include "core/verification_cache.hpp"
#include "proxy/net.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

namespace clerk::proxy {

struct auth_result {
    /// allow, or invalid_token (reason: malformed, not_found, revoked, expired, bad_signature,
    /// token_type_not_supported, ...), or auth_unavailable. Never insufficient_scope: the route
    /// policy is applied by the caller (core::post_authenticate) on every request.
    core::auth_decision decision;
    std::shared_ptr<const core::identity> id;  ///< set iff decision is allow
    /// How the cache answered; nullopt when the cache was not consulted.
    std::optional<core::cache_result> cache;
};

/// Verifies bearer tokens. Thread safety: authenticate() may be called concurrently from any
/// thread/strand. Contract: never throws for expected outcomes (network errors, timeouts, bad
/// JSON are values); completes no later than shortly after `deadline`. `token` must stay valid
/// until the returned awaitable completes (it points into the caller's request).
class authenticator {
public:
    virtual ~authenticator() = default;
    virtual net::awaitable<auth_result> authenticate(
        std::string_view token, core::token_class cls,
        std::chrono::steady_clock::time_point deadline) = 0;
    /// Background work (JWKS refresh); called once after construction. Default: none.
    virtual void start() {}
    /// Stop background work (shutdown/reload). Default: none.
    virtual void stop() {}
};

}  // namespace clerk::proxy
