#include "core/verification_cache.hpp"

// The token digest runs on every request. OpenSSL 3's EVP_MAC path allocates contexts and looks
// the digest up by name on each call; the SHA256_* functions (deprecated for new code, kept in
// OpenSSL 3) run on a stack context with no allocation, and the HMAC around them is the RFC 2104
// construction with the keyed states computed once. Checked against RFC 4231 and EVP's HMAC.
#define OPENSSL_SUPPRESS_DEPRECATED

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace clerk::core {
namespace {

// A failed HMAC or RNG call leaves no safe way on: a constant digest would make every token
// share one cache entry. This is RELEASE_ASSERT territory, so the process stops.
[[noreturn]] void crypto_failure(const char* what) {
    std::fputs("clerk-m2m-proxy: fatal: OpenSSL failure in ", stderr);
    std::fputs(what, stderr);
    std::fputs("\n", stderr);
    std::abort();
}

std::uint64_t load_u64(const token_digest& d, std::size_t offset) {
    std::uint64_t v = 0;
    std::memcpy(&v, d.data() + offset, sizeof v);
    return v;
}

long long saturating_add(long long a, long long b) {
    if (b > 0 && a > std::numeric_limits<long long>::max() - b) {
        return std::numeric_limits<long long>::max();
    }
    return a + b;
}

// Splits `total` over `n` shards so that the parts sum to exactly `total` (the hard bound).
std::size_t share_of(std::size_t total, std::size_t n, std::size_t index) {
    return total / n + (index < total % n ? 1 : 0);
}

}  // namespace

struct token_hasher::keyed_state {
    SHA256_CTX inner;  ///< after (K xor ipad)
    SHA256_CTX outer;  ///< after (K xor opad)
};

token_hasher::token_hasher() {
    if (RAND_bytes(key_.data(), static_cast<int>(key_.size())) != 1) {
        crypto_failure("RAND_bytes");
    }
    precompute();
}

token_hasher::token_hasher(std::string_view key) {
    // HMAC zero-pads short keys, so copying into the zeroed array keeps HMAC(key) semantics;
    // a longer key is compressed with SHA-256 (fixed width is all the tests need).
    if (key.size() <= key_.size()) {
        std::memcpy(key_.data(), key.data(), key.size());
    } else {
        unsigned int len = 0;
        if (EVP_Digest(key.data(), key.size(), key_.data(), &len, EVP_sha256(), nullptr) != 1) {
            crypto_failure("EVP_Digest(SHA256)");
        }
    }
    precompute();
}

void token_hasher::precompute() {
    // RFC 2104: K0 = key zero-padded to the 64-byte block; inner = H(K0^ipad || m),
    // outer = H(K0^opad || inner).
    std::array<unsigned char, SHA256_CBLOCK> ipad{};
    std::array<unsigned char, SHA256_CBLOCK> opad{};
    for (std::size_t i = 0; i < ipad.size(); ++i) {
        const unsigned char k = i < key_.size() ? key_[i] : 0;
        ipad[i] = static_cast<unsigned char>(k ^ 0x36);
        opad[i] = static_cast<unsigned char>(k ^ 0x5c);
    }
    auto st = std::make_shared<keyed_state>();
    if (SHA256_Init(&st->inner) != 1 || SHA256_Update(&st->inner, ipad.data(), ipad.size()) != 1 ||
        SHA256_Init(&st->outer) != 1 || SHA256_Update(&st->outer, opad.data(), opad.size()) != 1) {
        crypto_failure("SHA256_Init");
    }
    OPENSSL_cleanse(ipad.data(), ipad.size());
    OPENSSL_cleanse(opad.data(), opad.size());
    state_ = std::move(st);
}

token_digest token_hasher::digest(std::string_view token) const {
    token_digest out{};
    SHA256_CTX ctx = state_->inner;
    std::array<unsigned char, SHA256_DIGEST_LENGTH> inner{};
    const bool ok = SHA256_Update(&ctx, token.data(), token.size()) == 1 &&
                    SHA256_Final(inner.data(), &ctx) == 1;
    ctx = state_->outer;
    if (!ok || SHA256_Update(&ctx, inner.data(), inner.size()) != 1 ||
        SHA256_Final(out.data(), &ctx) != 1) {
        crypto_failure("HMAC-SHA256");
    }
    OPENSSL_cleanse(&ctx, sizeof ctx);
    return out;
}

std::size_t token_digest_hash::operator()(const token_digest& d) const noexcept {
    // The digest is already uniformly distributed (HMAC output): take its first bytes.
    return static_cast<std::size_t>(load_u64(d, 0));
}

// One shard: two independent LRUs (newest first) under one mutex. Each entry is one node of
// the hash map, threaded onto its LRU order by two pointers (no separate list node: 100k
// cached identities cost 64 bytes less each than with std::list + an index of iterators).
struct verification_cache::shard {
    struct positive_entry {
        std::shared_ptr<const identity> id;
        long long fresh_until_ms;  // exclusive
        long long stale_until_ms;  // exclusive, >= fresh_until_ms
    };
    struct negative_entry {
        std::string_view reason;
        long long until_ms;  // exclusive
    };
    template <class Entry>
    struct lru {
        struct node;
        using item = std::pair<const token_digest, node>;  // the map's element
        struct node {
            Entry e;
            item* newer = nullptr;
            item* older = nullptr;
        };
        std::unordered_map<token_digest, node, token_digest_hash> index;
        item* newest = nullptr;
        item* oldest = nullptr;
        std::size_t capacity = 0;

        void unlink(item* it) {
            node& n = it->second;
            (n.newer ? n.newer->second.older : newest) = n.older;
            (n.older ? n.older->second.newer : oldest) = n.newer;
            n.newer = n.older = nullptr;
        }
        void link_newest(item* it) {
            it->second.older = newest;
            it->second.newer = nullptr;
            (newest ? newest->second.newer : oldest) = it;
            newest = it;
        }
        Entry* find(const token_digest& k) {
            auto f = index.find(k);
            if (f == index.end()) {
                return nullptr;
            }
            item* it = &*f;
            if (it != newest) {  // refresh recency
                unlink(it);
                link_newest(it);
            }
            return &it->second.e;
        }
        void erase(const token_digest& k) {
            auto f = index.find(k);
            if (f != index.end()) {
                unlink(&*f);
                index.erase(f);
            }
        }
        void put(const token_digest& k, Entry e) {
            erase(k);
            if (capacity == 0) {
                return;
            }
            // Evict before inserting so the bound holds at every instant.
            while (index.size() >= capacity) {
                auto f = index.find(oldest->first);
                unlink(oldest);
                index.erase(f);
            }
            auto [f, inserted] = index.try_emplace(k, node{std::move(e)});
            link_newest(&*f);
        }
        std::size_t size() const { return index.size(); }
        void clear() {
            index.clear();
            newest = oldest = nullptr;
        }
    };

    mutable std::mutex mu;
    lru<positive_entry> positive;
    lru<negative_entry> negative;
};

// The principals of cached identities, one copy each. The set holds a reference to each; one
// that nothing else references any more (use_count 1, checked under the mutex: a new reference
// can only be taken through the set) is dropped by the next purge, which runs when the set has
// doubled since the last one (amortized O(1) per insertion).
struct verification_cache::principal_pool {
    struct by_value_hash {
        std::size_t operator()(const std::shared_ptr<const principal>& p) const noexcept {
            return principal_hash{}(*p);
        }
    };
    struct by_value_equal {
        bool operator()(const std::shared_ptr<const principal>& a,
                        const std::shared_ptr<const principal>& b) const noexcept {
            return a == b || *a == *b;
        }
    };
    mutable std::mutex mu;
    std::unordered_set<std::shared_ptr<const principal>, by_value_hash, by_value_equal> set;
    std::size_t purge_at = 64;

    void purge_unused() {
        std::erase_if(set, [](const auto& p) { return p.use_count() == 1; });
        purge_at = std::max<std::size_t>(64, 2 * set.size());
    }
};

std::shared_ptr<const identity> verification_cache::share_principal(
    std::shared_ptr<const identity> id) {
    principal_pool& pool = *principals_;
    std::lock_guard lock(pool.mu);
    if (pool.set.size() >= pool.purge_at) {
        pool.purge_unused();
    }
    const auto [it, inserted] = pool.set.insert(id->who);
    if (inserted || *it == id->who) {
        return id;
    }
    auto shared = std::make_shared<identity>(*id);
    shared->who = *it;
    return shared;
}

std::size_t verification_cache::principal_count() const {
    std::lock_guard lock(principals_->mu);
    return principals_->set.size();
}

verification_cache::verification_cache(cache_options opts, const clock& clk)
    : opts_(opts), clock_(clk), principals_(std::make_unique<principal_pool>()) {
    if (opts_.max_negative_entries == 0) {
        opts_.max_negative_entries = std::max<std::size_t>(1024, opts_.max_entries / 4);
    }
    // Never more shards than entries, so every shard of a tiny cache can hold something.
    opts_.shards = std::max<std::size_t>(1, std::min(opts_.shards, opts_.max_entries));
    shards_ = std::make_unique<shard[]>(opts_.shards);
    for (std::size_t i = 0; i < opts_.shards; ++i) {
        shards_[i].positive.capacity = share_of(opts_.max_entries, opts_.shards, i);
        shards_[i].negative.capacity = share_of(opts_.max_negative_entries, opts_.shards, i);
    }
}

verification_cache::~verification_cache() = default;

verification_cache::shard& verification_cache::shard_for(const token_digest& key) const {
    // Different digest bytes than token_digest_hash, so shard choice and bucket choice are
    // independent.
    return shards_[load_u64(key, 8) % opts_.shards];
}

namespace {
long long now_ms(const clock& c) {
    return std::chrono::duration_cast<millis>(c.now().time_since_epoch()).count();
}
}  // namespace

cache_lookup verification_cache::lookup(const token_digest& key) {
    const long long now = now_ms(clock_);
    shard& s = shard_for(key);
    std::lock_guard lock(s.mu);
    if (auto* p = s.positive.find(key)) {
        if (now < p->fresh_until_ms) {
            return {cache_result::hit, p->id, {}};
        }
        if (now >= p->stale_until_ms) {
            s.positive.erase(key);  // lazy expiry; `p` is dangling from here on
        }
        return {};  // past ttl: only lookup_stale may still use it
    }
    if (auto* n = s.negative.find(key)) {
        if (now < n->until_ms) {
            return {cache_result::negative_hit, nullptr, n->reason};
        }
        s.negative.erase(key);
    }
    return {};
}

cache_lookup verification_cache::lookup_stale(const token_digest& key) {
    const long long now = now_ms(clock_);
    shard& s = shard_for(key);
    std::lock_guard lock(s.mu);
    if (auto* p = s.positive.find(key)) {
        if (now < p->stale_until_ms) {
            return {cache_result::stale, p->id, {}};
        }
        s.positive.erase(key);
    }
    return {};
}

void verification_cache::put_positive(const token_digest& key, std::shared_ptr<const identity> id,
                                      long long until_ms) {
    if (!id || opts_.ttl.count() <= 0) {
        return;  // ttl 0: caching disabled
    }
    const long long now = now_ms(clock_);
    const long long expires =
        std::min(id->expires_at_ms.value_or(std::numeric_limits<long long>::max()), until_ms);
    if (expires <= now) {
        return;  // already expired: never serve it, not even stale
    }
    const long long fresh = std::min(saturating_add(now, opts_.ttl.count()), expires);
    const long long stale =
        std::min(saturating_add(saturating_add(now, opts_.ttl.count()),
                                std::max<long long>(0, opts_.stale_if_error.count())),
                 expires);
    id = share_principal(std::move(id));
    shard& s = shard_for(key);
    std::lock_guard lock(s.mu);
    s.negative.erase(key);  // a fresh verification supersedes an old rejection
    s.positive.put(key, {std::move(id), fresh, stale});
}

void verification_cache::put_negative(const token_digest& key, std::string_view reason,
                                      long long until_ms) {
    if (opts_.negative_ttl.count() <= 0) {
        return;  // negative_ttl 0: rejections are not remembered
    }
    const long long until =
        std::min(saturating_add(now_ms(clock_), opts_.negative_ttl.count()), until_ms);
    if (until <= now_ms(clock_)) {
        return;
    }
    shard& s = shard_for(key);
    std::lock_guard lock(s.mu);
    s.positive.erase(key);  // a definitive rejection (e.g. revoked) beats an earlier success
    s.negative.put(key, {reason, until});
}

std::size_t verification_cache::size() const {
    std::size_t total = 0;
    for (std::size_t i = 0; i < opts_.shards; ++i) {
        std::lock_guard lock(shards_[i].mu);
        total += shards_[i].positive.size();
    }
    return total;
}

std::size_t verification_cache::negative_size() const {
    std::size_t total = 0;
    for (std::size_t i = 0; i < opts_.shards; ++i) {
        std::lock_guard lock(shards_[i].mu);
        total += shards_[i].negative.size();
    }
    return total;
}

void verification_cache::clear() {
    for (std::size_t i = 0; i < opts_.shards; ++i) {
        std::lock_guard lock(shards_[i].mu);
        shards_[i].positive.clear();
        shards_[i].negative.clear();
    }
    std::lock_guard lock(principals_->mu);
    principals_->set.clear();
    principals_->purge_at = 64;
}

}  // namespace clerk::core
