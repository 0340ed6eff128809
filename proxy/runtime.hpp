#pragma once
// The runtime snapshot (STYLE.md §8): everything a request needs that a reload may change.
// Each request pins the snapshot it started with; SIGHUP swaps in a new one atomically.
#include "config/config.hpp"
#include "core/header_rules.hpp"
#include "core/verification_cache.hpp"
#include "proxy/authenticator.hpp"
#include "proxy/metrics.hpp"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace clerk::proxy {

class upstream_pool;

/// Immutable after build_runtime(); shared by every request that started under it.
struct runtime {
    std::shared_ptr<const config::config> cfg;
    core::header_rules rules;
    std::shared_ptr<authenticator> auth;
    std::shared_ptr<core::verification_cache> cache;
    std::shared_ptr<upstream_pool> upstream;  ///< null in forward_auth mode
};

/// Builds a snapshot for `cfg`. With `previous`, the verification cache is kept unless the
/// Clerk credentials or API URL (or the cache settings) changed, and the upstream pool is kept
/// while the upstream settings are equal. Returns nullptr and appends to `errors` on failure
/// (e.g. an unreadable upstream.ca_file).
std::shared_ptr<const runtime> build_runtime(net::any_io_executor exec,
                                             std::shared_ptr<const config::config> cfg,
                                             const runtime* previous, metrics& m,
                                             std::vector<std::string>& errors);

/// The current snapshot. Thread safety: load()/store() from any thread. A mutex rather than
/// std::atomic<std::shared_ptr>: the critical section is one reference-count increment, and
/// GCC 12's lock-bit implementation of the latter is not worth trusting on the hot path.
class runtime_holder {
public:
    std::shared_ptr<const runtime> load() const {
        std::lock_guard lock(mu_);
        return current_;
    }
    void store(std::shared_ptr<const runtime> r) {
        std::lock_guard lock(mu_);
        current_.swap(r);
        // The previous snapshot (now in `r`) is released outside the lock by the destructor.
    }

private:
    mutable std::mutex mu_;
    std::shared_ptr<const runtime> current_;
};

}  // namespace clerk::proxy
