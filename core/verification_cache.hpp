#pragma once
// The verification cache (docs/reference.md §3 "cache", §4 "Cache"): a sharded LRU keyed by a keyed
// SHA-256 digest of the token. The raw token is never stored.
#include "core/clock.hpp"
#include "core/identity.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string_view>

namespace clerk::core {

using token_digest = std::array<std::uint8_t, 32>;

/// HMAC-SHA256(key, token). The key is per process (random), so digests are useless outside it.
/// The keyed inner and outer SHA-256 states are computed once, so a digest costs three
/// compression rounds for a short token and no allocation (it runs on every request).
/// Thread safety: digest() may be called concurrently.
class token_hasher {
public:
    token_hasher();                               ///< random 32-byte key from OpenSSL RAND
    explicit token_hasher(std::string_view key);  ///< fixed key (tests)
    token_digest digest(std::string_view token) const;

    struct keyed_state;  ///< the SHA-256 states after the ipad and opad blocks

private:
    void precompute();
    std::array<std::uint8_t, 32> key_{};
    std::shared_ptr<const keyed_state> state_;
};

struct token_digest_hash {
    std::size_t operator()(const token_digest& d) const noexcept;
};

struct cache_options {
    std::size_t max_entries = 100000;      ///< positive entries, hard bound
    std::size_t max_negative_entries = 0;  ///< 0 -> max(1024, max_entries / 4): its own LRU, so
                                           ///< floods of bad tokens never evict good entries
    millis ttl{60000};
    millis negative_ttl{10000};
    millis stale_if_error{0};
    std::size_t shards = 16;
};

enum class cache_result { hit, miss, negative_hit, stale };

constexpr std::string_view to_string(cache_result r) {
    switch (r) {
        case cache_result::hit:
            return "hit";
        case cache_result::miss:
            return "miss";
        case cache_result::negative_hit:
            return "negative_hit";
        case cache_result::stale:
            return "stale";
    }
    return "miss";
}

struct cache_lookup {
    cache_result result = cache_result::miss;
    std::shared_ptr<const identity> id;  ///< set for hit (and stale from lookup_stale)
    std::string_view negative_reason;    ///< set for negative_hit (static string)
};

/// Thread safety: all methods are safe from any thread (one mutex per shard).
class verification_cache {
public:
    verification_cache(cache_options opts, const clock& clk);
    ~verification_cache();  // out of line: `shard` is incomplete here
    verification_cache(const verification_cache&) = delete;
    verification_cache& operator=(const verification_cache&) = delete;

    /// hit: a positive entry within min(ttl, token expiration); negative_hit: a negative entry
    /// within negative_ttl; else miss. A hit refreshes LRU recency. Never returns stale.
    cache_lookup lookup(const token_digest& key);

    /// A positive entry past ttl but within ttl + stale_if_error and before the token's own
    /// expiration (for Clerk outages). result is stale or miss.
    cache_lookup lookup_stale(const token_digest& key);

    /// `until_ms` (ms since the epoch) shortens the entry's life further: an entry copied from
    /// the shared cache expires when its source would (docs/reference.md §15).
    void put_positive(const token_digest& key, std::shared_ptr<const identity> id,
                      long long until_ms = std::numeric_limits<long long>::max());
    /// `reason` must be a static string (e.g. "not_found").
    void put_negative(const token_digest& key, std::string_view reason,
                      long long until_ms = std::numeric_limits<long long>::max());

    std::size_t size() const;  ///< positive entries
    std::size_t negative_size() const;
    /// Distinct principals the pool holds (entries that share one count once; tests).
    std::size_t principal_count() const;
    void clear();

private:
    struct shard;
    struct principal_pool;
    shard& shard_for(const token_digest& key) const;
    /// `id` with its principal replaced by an equal one already cached, so that N tokens of
    /// one machine hold one copy of its subject, scopes and claims (a copy of `id` when that
    /// changes anything; `id` itself otherwise).
    std::shared_ptr<const identity> share_principal(std::shared_ptr<const identity> id);
    cache_options opts_;
    const clock& clock_;
    std::unique_ptr<shard[]> shards_;
    std::unique_ptr<principal_pool> principals_;
};

}  // namespace clerk::core
