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

/// `Key` is what callers coalesce on: a token digest for verifications (the default), a unit
/// type (std::monostate) for "one JWKS fetch at a time".
/// Thread safety: all methods are safe from any thread. Callbacks run on the thread that calls
/// complete(), outside the internal lock; they should only post work to their own executor.
template <class Result, class Key = token_digest, class Hash = token_digest_hash>
class single_flight {
public:
    using callback = std::function<void(const Result&)>;

    /// Returns true when the caller is the leader: it must verify and then call complete(key, r)
    /// exactly once (also on failure). Otherwise `on_done` is queued and will be called by
    /// complete() with the leader's result.
    bool join(const Key& key, callback on_done) {
        std::lock_guard lock(mu_);
        auto [it, inserted] = waiting_.try_emplace(key);
        if (inserted) {
            return true;
        }
        it->second.push_back(std::move(on_done));
        return false;
    }

    /// Delivers `r` to every follower of `key` and forgets the key.
    void complete(const Key& key, const Result& r) {
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
    std::unordered_map<Key, std::vector<callback>, Hash> waiting_;
};

}  // namespace clerk::core
