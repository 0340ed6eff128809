#pragma once
// The production authenticator (docs/reference.md §4): cache first, then one coalesced verification
// per token (Clerk for opaque M2M tokens, the local JWT verifier for M2M JWTs), stale results
// on Clerk outages when cache.stale_if_error allows. make_authenticator() (auth_factory.hpp)
// builds it with the real Clerk client; tests inject a fake clerk_api and clock here.
#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/verification_cache.hpp"
#include "proxy/auth/authenticator.hpp"
#include "proxy/auth/clerk_client.hpp"
#include "proxy/metrics.hpp"

#include <memory>

namespace clerk::proxy {

class shared_cache;  // proxy/auth/shared_cache.hpp

/// `api` performs the HTTP exchanges with Clerk (verify and JWKS); `clk` is the wall clock for
/// token expirations. `m` and `clk` must outlive the authenticator and its background work.
std::shared_ptr<authenticator> make_clerk_authenticator(
    net::any_io_executor exec, std::shared_ptr<const config::config> cfg,
    std::shared_ptr<core::verification_cache> cache, metrics& m, std::shared_ptr<clerk_api> api,
    const core::clock& clk, std::shared_ptr<shared_cache> shared = nullptr);

}  // namespace clerk::proxy
