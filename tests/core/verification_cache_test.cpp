#include "core/verification_cache.hpp"
#include "fakes/principal_edit.hpp"

#include "fakes/fake_clock.hpp"

#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <latch>
#include <list>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clerk::core::cache_options;
using clerk::core::cache_result;
using clerk::core::identity;
using clerk::core::token_digest;
using clerk::core::token_hasher;
using clerk::core::verification_cache;
using clerk::testing::edit;
using clerk::testing::fake_clock;

long long now_ms(const fake_clock& c) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(c.now().time_since_epoch())
        .count();
}

std::shared_ptr<const identity> make_id(std::string subject,
                                        std::optional<long long> expires_at_ms = std::nullopt) {
    auto id = std::make_shared<identity>();
    edit(*id).subject = std::move(subject);
    id->expires_at_ms = expires_at_ms;
    return id;
}

token_digest key(const std::string& token) {
    static const token_hasher h("fixed test key");
    return h.digest(token);
}
token_digest key(int i) {
    return key("mt_token_" + std::to_string(i));
}

cache_options small(std::size_t max_entries, std::size_t shards = 16) {
    cache_options o;
    o.max_entries = max_entries;
    o.shards = shards;
    return o;
}

}  // namespace

TEST_CASE("token_hasher: keyed, stable digests that never equal the token", "[cache]") {
    const token_hasher a("key-a");
    const token_hasher b("key-b");
    const std::string token(32, 'x');  // as long as a digest, so raw bytes could coincide
    CHECK(a.digest(token) == a.digest(token));
    CHECK(a.digest(token) != a.digest(token + "y"));
    CHECK(a.digest(token) != b.digest(token));
    const auto d = a.digest(token);
    CHECK(std::memcmp(d.data(), token.data(), d.size()) != 0);
    CHECK(a.digest("") != b.digest(""));  // empty input is fine too

    // Random per-process keys differ between instances.
    const token_hasher r1;
    const token_hasher r2;
    CHECK(r1.digest(token) != r2.digest(token));

    // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
    const auto rfc = token_hasher("Jefe").digest("what do ya want for nothing?");
    const std::uint8_t expected[] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                     0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                     0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                     0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    CHECK(std::equal(rfc.begin(), rfc.end(), std::begin(expected)));
}

TEST_CASE("token_hasher: equals OpenSSL's HMAC-SHA256 at every block boundary", "[cache]") {
    for (const std::string& key :
         {std::string("k"), std::string(32, '\x7f'), std::string("another key")}) {
        const token_hasher h(key);
        for (std::size_t n = 0; n <= 200; ++n) {
            std::string m(n, '\0');
            for (std::size_t i = 0; i < n; ++i) {
                m[i] = static_cast<char>('a' + (i * 7 + n) % 26);
            }
            unsigned char mac[EVP_MAX_MD_SIZE];
            unsigned int len = 0;
            REQUIRE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                         reinterpret_cast<const unsigned char*>(m.data()), m.size(), mac,
                         &len) != nullptr);
            const auto d = h.digest(m);
            INFO("key " << key.size() << " bytes, message " << n << " bytes");
            REQUIRE(len == d.size());
            CHECK(std::equal(d.begin(), d.end(), mac));
        }
    }
}

TEST_CASE("cache: hit, miss and ttl expiry", "[cache]") {
    fake_clock clk;
    verification_cache cache(cache_options{}, clk);
    CHECK(cache.lookup(key(1)).result == cache_result::miss);

    cache.put_positive(key(1), make_id("mch_1"));
    auto r = cache.lookup(key(1));
    REQUIRE(r.result == cache_result::hit);
    CHECK(r.id->who->subject == "mch_1");
    CHECK(cache.lookup(key(2)).result == cache_result::miss);
    CHECK(cache.size() == 1);

    clk.advance(59999ms);
    CHECK(cache.lookup(key(1)).result == cache_result::hit);
    clk.advance(1ms);  // ttl reached
    CHECK(cache.lookup(key(1)).result == cache_result::miss);
    CHECK(cache.size() == 0);  // dropped lazily (stale_if_error is 0)
}

TEST_CASE("cache: a positive entry never outlives the token's expiration", "[cache]") {
    fake_clock clk;
    cache_options o;
    o.stale_if_error = 600s;
    verification_cache cache(o, clk);
    cache.put_positive(key(1), make_id("mch_1", now_ms(clk) + 5000));
    CHECK(cache.lookup(key(1)).result == cache_result::hit);
    clk.advance(5s);
    CHECK(cache.lookup(key(1)).result == cache_result::miss);
    CHECK(cache.lookup_stale(key(1)).result == cache_result::miss);

    // Already expired at insertion: not cached at all.
    cache.put_positive(key(2), make_id("mch_2", now_ms(clk)));
    CHECK(cache.lookup(key(2)).result == cache_result::miss);
    CHECK(cache.size() == 0);
}

TEST_CASE("cache: negative entries and negative_ttl", "[cache]") {
    fake_clock clk;
    verification_cache cache(cache_options{}, clk);
    cache.put_negative(key(1), "not_found");
    auto r = cache.lookup(key(1));
    REQUIRE(r.result == cache_result::negative_hit);
    CHECK(r.negative_reason == "not_found");
    CHECK(r.id == nullptr);
    CHECK(cache.negative_size() == 1);
    CHECK(cache.size() == 0);
    CHECK(cache.lookup_stale(key(1)).result == cache_result::miss);
    clk.advance(10s);
    CHECK(cache.lookup(key(1)).result == cache_result::miss);
    CHECK(cache.negative_size() == 0);

    // A rejection replaces an earlier success and vice versa.
    cache.put_positive(key(2), make_id("mch_2"));
    cache.put_negative(key(2), "revoked");
    CHECK(cache.lookup(key(2)).negative_reason == "revoked");
    cache.put_positive(key(2), make_id("mch_2"));
    CHECK(cache.lookup(key(2)).result == cache_result::hit);
}

TEST_CASE("cache: ttl 0 and negative_ttl 0 disable caching", "[cache]") {
    fake_clock clk;
    cache_options o;
    o.ttl = 0ms;
    o.negative_ttl = 0ms;
    verification_cache cache(o, clk);
    cache.put_positive(key(1), make_id("mch_1"));
    cache.put_negative(key(2), "not_found");
    CHECK(cache.lookup(key(1)).result == cache_result::miss);
    CHECK(cache.lookup(key(2)).result == cache_result::miss);
    CHECK(cache.size() == 0);
    CHECK(cache.negative_size() == 0);
}

TEST_CASE("cache: stale window", "[cache]") {
    fake_clock clk;
    cache_options o;
    o.ttl = 10s;
    o.stale_if_error = 20s;
    verification_cache cache(o, clk);
    cache.put_positive(key(1), make_id("mch_1"));
    cache.put_positive(key(2), make_id("mch_2", now_ms(clk) + 15000));

    CHECK(cache.lookup_stale(key(3)).result == cache_result::miss);  // unknown key

    clk.advance(12s);                                          // past ttl, within the stale window
    CHECK(cache.lookup(key(1)).result == cache_result::miss);  // lookup never returns stale
    auto r = cache.lookup_stale(key(1));
    REQUIRE(r.result == cache_result::stale);
    CHECK(r.id->who->subject == "mch_1");
    CHECK(cache.lookup_stale(key(2)).result == cache_result::stale);

    clk.advance(3s);  // token 2 expired: never served, not even stale
    CHECK(cache.lookup_stale(key(2)).result == cache_result::miss);
    CHECK(cache.lookup_stale(key(1)).result == cache_result::stale);

    clk.advance(15s);  // ttl + stale_if_error reached
    CHECK(cache.lookup_stale(key(1)).result == cache_result::miss);
    CHECK(cache.size() == 0);
}

TEST_CASE("cache: LRU eviction keeps a hard bound and the most recent entries", "[cache]") {
    fake_clock clk;
    for (const std::size_t max : {std::size_t{1}, std::size_t{7}, std::size_t{100}}) {
        CAPTURE(max);
        verification_cache cache(small(max), clk);
        const int total = static_cast<int>(max) + 1000;
        for (int i = 0; i < total; ++i) {
            cache.put_positive(key(i), make_id("mch_" + std::to_string(i)));
            REQUIRE(cache.size() <= max);
        }
        CHECK(cache.lookup(key(total - 1)).result == cache_result::hit);  // most recent survives
        CHECK(cache.lookup(key(0)).result == cache_result::miss);         // oldest evicted
    }
}

TEST_CASE("cache: exact LRU order within one shard", "[cache]") {
    fake_clock clk;
    verification_cache cache(small(3, 1), clk);
    for (int i = 0; i < 3; ++i) {
        cache.put_positive(key(i), make_id("mch"));
    }
    CHECK(cache.lookup(key(0)).result == cache_result::hit);  // 0 becomes most recent
    cache.put_positive(key(3), make_id("mch"));               // evicts 1, the least recent
    CHECK(cache.lookup(key(1)).result == cache_result::miss);
    CHECK(cache.lookup(key(0)).result == cache_result::hit);
    CHECK(cache.lookup(key(2)).result == cache_result::hit);
    CHECK(cache.lookup(key(3)).result == cache_result::hit);
    CHECK(cache.size() == 3);
    cache.put_positive(key(3), make_id("mch_new"));  // re-insert replaces, no growth
    CHECK(cache.size() == 3);
    CHECK(cache.lookup(key(3)).id->who->subject == "mch_new");
}

TEST_CASE("cache: a flood of negative entries never evicts positive ones", "[cache]") {
    fake_clock clk;
    verification_cache cache(small(1000), clk);
    // Fewer keys than max_entries, so that no shard is full and every one is still cached.
    constexpr int good = 500;
    for (int i = 0; i < good; ++i) {
        cache.put_positive(key(i), make_id("mch"));
    }
    REQUIRE(cache.size() == good);
    for (int i = 0; i < 50000; ++i) {
        cache.put_negative(key("bad_" + std::to_string(i)), "not_found");
        REQUIRE(cache.negative_size() <= 1024);  // default: max(1024, max_entries / 4)
    }
    CHECK(cache.size() == good);
    int hits = 0;
    for (int i = 0; i < good; ++i) {
        hits += cache.lookup(key(i)).result == cache_result::hit ? 1 : 0;
    }
    CHECK(hits == good);
}

TEST_CASE("cache: clear empties both LRUs", "[cache]") {
    fake_clock clk;
    verification_cache cache(cache_options{}, clk);
    cache.put_positive(key(1), make_id("mch"));
    cache.put_negative(key(2), "not_found");
    cache.clear();
    CHECK(cache.size() == 0);
    CHECK(cache.negative_size() == 0);
    CHECK(cache.lookup(key(1)).result == cache_result::miss);
}

TEST_CASE("cache: tokens of one principal share one copy of it", "[cache]") {
    fake_clock clk;
    verification_cache cache(cache_options{}, clk);
    // Two tokens of one machine: equal principals built separately (as two verifications do).
    auto first = make_id("mch_one");
    auto second = make_id("mch_one");
    REQUIRE(first->who != second->who);
    cache.put_positive(key(1), first);
    cache.put_positive(key(2), second);
    const auto a = cache.lookup(key(1));
    const auto b = cache.lookup(key(2));
    REQUIRE(a.result == cache_result::hit);
    REQUIRE(b.result == cache_result::hit);
    CHECK(a.id->who == b.id->who);  // one copy
    CHECK(a.id->who->subject == "mch_one");
    CHECK(cache.principal_count() == 1);

    // What is the token's own stays the token's own.
    auto third = std::make_shared<identity>(*make_id("mch_one", now_ms(clk) + 60'000));
    third->token_id = "mt_third";
    cache.put_positive(key(3), third);
    const auto c = cache.lookup(key(3));
    REQUIRE(c.result == cache_result::hit);
    CHECK(c.id->who == a.id->who);
    CHECK(c.id->token_id == "mt_third");
    CHECK(c.id->expires_at_ms == now_ms(clk) + 60'000);

    // A principal that differs in anything is its own.
    auto other = std::make_shared<identity>(*make_id("mch_one"));
    edit(*other).scopes = {"mch_extra"};
    cache.put_positive(key(4), other);
    const auto d = cache.lookup(key(4));
    REQUIRE(d.result == cache_result::hit);
    CHECK(d.id->who != a.id->who);
    CHECK(d.id->who->scopes == std::vector<std::string>{"mch_extra"});
    CHECK(a.id->who->scopes.empty());
    CHECK(cache.principal_count() == 2);
}

TEST_CASE("cache: principals no entry uses any more are dropped", "[cache]") {
    fake_clock clk;
    verification_cache cache(small(10, 1), clk);
    for (int i = 0; i < 1000; ++i) {
        cache.put_positive(key(i), make_id("mch_" + std::to_string(i)));
    }
    CHECK(cache.size() == 10);
    // At most the live ones plus what accumulates until the next purge (64 at this size).
    CHECK(cache.principal_count() <= 64);
    // The ten cached ones are all still there, each with its own principal.
    for (int i = 990; i < 1000; ++i) {
        const auto r = cache.lookup(key(i));
        REQUIRE(r.result == cache_result::hit);
        CHECK(r.id->who->subject == "mch_" + std::to_string(i));
    }
    cache.clear();
    CHECK(cache.principal_count() == 0);
}

TEST_CASE("cache: concurrent lookups and puts on overlapping keys", "[cache][concurrency]") {
    fake_clock clk;
    cache_options o = small(64, 4);
    o.max_negative_entries = 32;
    o.stale_if_error = 5s;
    verification_cache cache(o, clk);
    constexpr int threads = 8;
    constexpr int iterations = 20000;
    std::latch start(threads);
    std::atomic<int> bad{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            start.arrive_and_wait();
            for (int i = 0; i < iterations; ++i) {
                const auto k = key((i * 7 + t) % 200);
                switch ((i + t) % 5) {
                    case 0:
                        cache.put_positive(k, make_id("mch_x"));
                        break;
                    case 1:
                        cache.put_negative(k, "not_found");
                        break;
                    case 2:
                        (void)cache.lookup_stale(k);
                        break;
                    case 3:
                        if (t == 0) {
                            clk.advance(1ms);
                        }
                        break;
                    default: {
                        const auto r = cache.lookup(k);
                        if (r.result == cache_result::hit &&
                            (!r.id || r.id->who->subject != "mch_x")) {
                            ++bad;
                        }
                    }
                }
                if (cache.size() > 64 || cache.negative_size() > 32) {
                    ++bad;
                }
            }
        });
    }
    for (auto& th : pool) {
        th.join();
    }
    CHECK(bad == 0);
}

TEST_CASE("cache: LRU against a reference model (random puts, lookups, rejections)", "[cache]") {
    fake_clock clk;
    constexpr std::size_t capacity = 8;
    verification_cache cache(small(capacity, 1), clk);  // one shard: one exact LRU
    std::list<int> model;                               // most recent first
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> pick_key(0, 19);
    std::uniform_int_distribution<int> pick_op(0, 9);
    auto model_remove = [&](int k) { model.remove(k); };
    for (int step = 0; step < 20000; ++step) {
        const int k = pick_key(rng);
        const int op = pick_op(rng);
        CAPTURE(step, k, op);
        if (op < 4) {  // put_positive: most recent, evicting the least recent when full
            cache.put_positive(key(k), make_id("mch_" + std::to_string(k)));
            model_remove(k);
            if (model.size() >= capacity) {
                model.pop_back();
            }
            model.push_front(k);
        } else if (op < 9) {  // lookup: a hit refreshes recency
            const bool in_model = std::find(model.begin(), model.end(), k) != model.end();
            const auto r = cache.lookup(key(k));
            REQUIRE((r.result == cache_result::hit) == in_model);
            if (in_model) {
                REQUIRE(r.id->who->subject == "mch_" + std::to_string(k));
                model_remove(k);
                model.push_front(k);
            }
        } else {  // a rejection removes the positive entry
            cache.put_negative(key(k), "revoked");
            model_remove(k);
        }
        REQUIRE(cache.size() == model.size());
    }
}
