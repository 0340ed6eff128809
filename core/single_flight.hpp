#pragma once
// Single-flight: concurrent lookups of one key share one verification. Callback based so that
// the proxy can adapt it to Asio (async_initiate) while core stays free of Asio.
#include "core/verification_cache.hpp"

#include <functional>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace clerk::core {

/// Thread safety: all methods are safe from any thread. Callbacks run on the thread that calls
/// complete(), outside the internal lock; they should only post work to their own executor.
template <class Result>
class single_flight {
public:
    using callback = std::function<void(const Result&)>;

    /// Returns true when the caller is the leader: it must verify and then call complete(key, r)
    /// exactly once (also on failure). Otherwise `on_done` is queued and will be called by
    /// complete() with the leader's result.
    bool join(const token_digest& key, callback on_done) {
        std::lock_guard lock(mu_);
        auto [it, inserted] = waiting_.try_emplace(key);
        if (inserted) {
            return true;
        }
        it->second.push_back(std::move(on_done));
        return false;
    }

    /// Delivers `r` to every follower of `key` and forgets the key.
    void complete(const token_digest& key, const Result& r) {
        std::vector<callback> followers;
        {
            std::lock_guard lock(mu_);
            auto it = waiting_.find(key);
            if (it == waiting_.end()) {
                return;
            }
            followers = std::move(it->second);
            waiting_.erase(it);
        }
        for (auto& f : followers) {
            f(r);
        }
    }

    std::size_t in_flight() const {
        std::lock_guard lock(mu_);
        return waiting_.size();
    }

private:
    mutable std::mutex mu_;
    std::unordered_map<token_digest, std::vector<callback>, token_digest_hash> waiting_;
};

}  // namespace clerk::core
