#pragma once
// The key set for local M2M JWT verification (docs/reference.md §4 "M2M JWT"): either clerk.jwt_key
// (PEM, networkless) or Clerk's JWKS (`GET {api_url}/v1/jwks` with clerk.secret_key), fetched
// at start(), refreshed in the background every 5 minutes, re-fetched at once on an unknown
// kid (coalesced, at most once per second). On a JWKS outage the last good set is kept.
#include "config/config.hpp"
#include "core/jwt.hpp"
#include "proxy/auth/clerk_client.hpp"
#include "proxy/metrics.hpp"

#include <chrono>
#include <memory>

namespace clerk::proxy {

/// Thread safety: every method may be called from any thread. Lifetime: background work holds
/// the shared state, so destroying the provider is safe; call stop() to end the refresh loop.
class jwks_provider {
public:
    /// `api` may be null when only a PEM key is used.
    jwks_provider(net::any_io_executor exec, std::shared_ptr<clerk_api> api,
                  const config::clerk_config& cfg, metrics& m);
    ~jwks_provider();

    /// False when neither clerk.jwt_key nor clerk.secret_key is set (JWTs cannot be verified).
    bool configured() const;
    /// The current set; nullptr before the first successful fetch (or with a bad PEM).
    std::shared_ptr<const core::jwt_key_set> current() const;
    /// Fetches the JWKS unless a fetch started less than a second ago, coalescing concurrent
    /// callers; completes by about `deadline`. Returns the (possibly unchanged) current set.
    net::awaitable<std::shared_ptr<const core::jwt_key_set>> refresh(
        std::chrono::steady_clock::time_point deadline);

    void start();  ///< initial fetch + the 5-minute refresh loop (no-op for PEM)
    void stop();

    static constexpr std::chrono::minutes refresh_interval{5};
    static constexpr std::chrono::seconds min_refetch_interval{1};

    struct state;

private:
    std::shared_ptr<state> st_;
};

}  // namespace clerk::proxy
