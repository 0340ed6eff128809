#pragma once
// The set of open downstream connections, for limits.max_connections and for draining
// (CONTRIBUTING.md §7 without Beast's task_group, which Boost 1.81 lacks).
#include "proxy/net/net.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace clerk::proxy {

/// Thread safety: every method may be called from any thread.
///
/// Drain protocol: drain() sets the draining flag, then posts each entry's `close_if_idle` onto
/// that connection's event loop. A session marks itself idle and reads the flag on its own loop,
/// so either it sees the flag before waiting for the next request, or the posted call finds it
/// idle and closes it: an idle connection never outlives a drain, a busy one finishes its
/// request first (and answers it with `Connection: close`).
///
/// Lifetime: the callbacks are only ever invoked on the connection's event loop and only while the
/// entry is registered; a session calls remove() on its loop before it is destroyed, so the
/// callbacks may capture the session by pointer.
class connection_registry {
public:
    struct entry {
        net::any_io_executor strand;          ///< the connection's event loop (one thread)
        std::function<void()> close_if_idle;  ///< drain: close unless a request is in flight
        std::function<void()> close_now;      ///< end of drain_timeout: close whatever it does
    };

    /// Adds a connection and returns its id (the listener checks size() against the limit).
    std::uint64_t add(entry e);
    /// Removes it. Called on the connection's event loop as its last act.
    void remove(std::uint64_t id);

    std::size_t size() const;
    bool draining() const { return draining_.load(std::memory_order_acquire); }

    /// Sets draining and asks every idle connection to close.
    void drain();
    /// Asks every connection to close now.
    void close_all();

private:
    void post_to(std::uint64_t id, const net::any_io_executor& strand, bool force);

    mutable std::mutex mu_;
    std::unordered_map<std::uint64_t, entry> conns_;
    std::uint64_t next_id_ = 1;
    std::atomic<bool> draining_{false};
};

}  // namespace clerk::proxy
