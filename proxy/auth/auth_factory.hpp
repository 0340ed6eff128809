#pragma once
// Builds the production authenticator for a config snapshot (Clerk client, JWT verifier,
// cache, single-flight): how the process (runtime.cpp) builds the auth/ room's authenticator.
#include "config/config.hpp"
#include "core/verification_cache.hpp"
#include "proxy/auth/authenticator.hpp"
#include "proxy/metrics.hpp"

#include <memory>

namespace clerk::proxy {

class shared_cache;  // proxy/auth/shared_cache.hpp

/// `cache` is shared across config reloads unless the Clerk keys changed (the caller decides).
/// `exec` runs background work (JWKS refresh) and the Clerk connection pool.
std::shared_ptr<authenticator> make_authenticator(net::any_io_executor exec,
                                                  std::shared_ptr<const config::config> cfg,
                                                  std::shared_ptr<core::verification_cache> cache,
                                                  metrics& m,
                                                  std::shared_ptr<shared_cache> shared = nullptr);

}  // namespace clerk::proxy
