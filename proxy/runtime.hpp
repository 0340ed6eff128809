#pragma once
// The runtime snapshot (CONTRIBUTING.md §8): everything a request needs that a reload may change.
// Each request pins the snapshot it started with; SIGHUP swaps in a new one atomically.
#include "config/config.hpp"
#include "core/header_rules.hpp"
#include "core/verification_cache.hpp"
#include "proxy/auth/authenticator.hpp"
#include "proxy/metrics.hpp"

#include <atomic>
#include <cstdint>
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
    /// One keep-alive pool per event loop (index = loop), so that an upstream connection, like
    /// a downstream one, lives on one thread; empty in forward_auth mode.
    std::vector<std::shared_ptr<upstream_pool>> upstreams;

    /// The pool of event loop `loop`, or nullptr (forward_auth mode).
    upstream_pool* upstream_for(std::size_t loop) const {
        return loop < upstreams.size() ? upstreams[loop].get() : nullptr;
    }
};

/// Builds a snapshot for `cfg`, with one upstream pool per executor of `loops` (loops[0] also
/// runs the authenticator's Clerk and JWKS clients). With `previous`, the verification cache is
/// kept unless the Clerk credentials or API URL (or the cache settings) changed, and the
/// upstream pools are kept while the upstream settings are equal. Returns nullptr and appends
/// to `errors` on failure (e.g. an unreadable upstream.ca_file).
std::shared_ptr<const runtime> build_runtime(const std::vector<net::any_io_executor>& loops,
                                             std::shared_ptr<const config::config> cfg,
                                             const runtime* previous, metrics& m,
                                             std::vector<std::string>& errors);

/// The current snapshot. Thread safety: load()/store()/generation() from any thread.
///
/// Each event loop keeps its own pin of the current snapshot (loop_runtime below) and compares
/// generation() — one relaxed atomic load — per request, so requests neither take this mutex nor
/// touch the snapshot's shared reference count.
class runtime_holder {
public:
    std::shared_ptr<const runtime> load() const {
        std::lock_guard lock(mu_);
        return current_;
    }
    void store(std::shared_ptr<const runtime> r) {
        {
            std::lock_guard lock(mu_);
            current_.swap(r);
            generation_.fetch_add(1, std::memory_order_release);
        }
        // The previous snapshot (now in `r`) is released outside the lock by the destructor.
    }
    std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

private:
    mutable std::mutex mu_;
    std::shared_ptr<const runtime> current_;
    std::atomic<std::uint64_t> generation_{0};
};

/// One event loop's view of the current snapshot. Thread safety: none — used only on its loop.
/// A request pins the snapshot with a copy of a pointer whose control block belongs to this
/// loop, so pinning costs no cross-thread cache-line traffic.
class loop_runtime {
public:
    struct pin {
        std::shared_ptr<const runtime> rt;
    };
    explicit loop_runtime(const runtime_holder& h) : holder_(&h) {}

    /// The snapshot a request starting now runs under (kept alive by the returned pin).
    std::shared_ptr<const pin> current() {
        const auto g = holder_->generation();
        if (!pin_ || g != generation_) {
            pin_ = std::make_shared<const pin>(pin{holder_->load()});
            generation_ = g;
        }
        return pin_;
    }

private:
    const runtime_holder* holder_;
    std::shared_ptr<const pin> pin_;
    std::uint64_t generation_ = 0;
};

}  // namespace clerk::proxy
