#pragma once
// The seam between the data path (session) and token verification (Clerk client, JWT, cache).
// Shape after Envoy ext_authz's Client: one async check, the outcome as a value.
#include "core/auth_decision.hpp"
#include "core/bearer_token.hpp"
#include "core/identity.hpp"
#include "core/request_decision.hpp"
#include "core/verification_cache.hpp"
#include "proxy/net/net.hpp"

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
    /// The token's type when it is known (classified, or from the cached identity): for the
    /// access log and metrics.
    std::optional<core::token_type> type;
};

/// The answer for a token that core::classify_and_accept refused (malformed, or a type not
/// accepted): no verification was attempted; `type` is set when the token was classified.
auth_result refused_by_classification(const core::classification_result& c);

/// Verifies bearer tokens. Thread safety: authenticate() may be called concurrently from any
/// thread/strand. Contract: never throws for expected outcomes (network errors, timeouts, bad
/// JSON are values); completes no later than shortly after `deadline`. `token` must stay valid
/// until the returned awaitable completes (it points into the caller's request).
class authenticator {
public:
    virtual ~authenticator() = default;
    virtual task<auth_result> authenticate(std::string_view token, core::token_class cls,
                                           std::chrono::steady_clock::time_point deadline) = 0;
    /// The data path's entry: a token not classified yet (core::pre_authenticate with
    /// classify=false). An implementation with a cache consults it first, so that a cached token
    /// costs no classification; otherwise, and on a miss, the token is classified and refused
    /// as core::classify_and_accept says (malformed, token_type_not_accepted: no verification
    /// and no Clerk call), else verified as authenticate() does. Default: classify, then
    /// authenticate().
    virtual task<auth_result> authenticate_bearer(std::string_view token,
                                                  const core::token_acceptance& accepts,
                                                  std::chrono::steady_clock::time_point deadline);
    /// authenticate_bearer's answer when it needs no I/O (a cached or negatively cached token,
    /// a token refused by its shape), with the same result and metrics; nullopt when it would
    /// have to wait (a miss), and then authenticate_bearer is awaited. The request path asks
    /// this first, so a cached token costs no coroutine. Default: nullopt.
    virtual std::optional<auth_result> authenticate_bearer_now(
        std::string_view /*token*/, const core::token_acceptance& /*accepts*/) {
        return std::nullopt;
    }
    /// Background work (JWKS refresh); called once after construction. Default: none.
    virtual void start() {}
    /// Stop background work (shutdown/reload). Default: none.
    virtual void stop() {}
};

}  // namespace clerk::proxy
