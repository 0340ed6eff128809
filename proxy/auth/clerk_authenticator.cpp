#include "proxy/auth/clerk_authenticator.hpp"

#include "core/jwt.hpp"
#include "proxy/auth/clerk_flight.hpp"
#include "proxy/auth/clerk_verifier.hpp"
#include "proxy/auth/jwks.hpp"
#include "proxy/auth/shared_cache.hpp"
#include "proxy/logging.hpp"

#include <openssl/crypto.h>
#include <boost/asio/strand.hpp>

#include <mutex>
#include <string>
#include <utility>

namespace clerk::proxy {
namespace {

using steady = std::chrono::steady_clock;
using core::decision_kind;

/// The HMAC key of the cache digests: one per process, so that a cache that survives a config
/// reload keeps its entries addressable by the next authenticator.
const core::token_hasher& process_hasher() {
    static const core::token_hasher h;
    return h;
}

/// A copy of the bearer token that outlives the caller's request (the verification runs
/// detached from it). Wiped on destruction: the raw token is never stored.
struct token_copy {
    explicit token_copy(std::string_view t) : s(t) {}
    token_copy(const token_copy&) = default;
    token_copy(token_copy&&) = default;
    token_copy& operator=(const token_copy&) = delete;
    token_copy& operator=(token_copy&&) = delete;
    ~token_copy() { OPENSSL_cleanse(s.data(), s.size()); }
    std::string s;
};

auth_result make_result(decision_kind k, std::string_view reason,
                        std::optional<core::cache_result> c = std::nullopt,
                        std::shared_ptr<const core::identity> id = nullptr) {
    return auth_result{core::auth_decision{k, reason}, std::move(id), c, std::nullopt};
}

/// cache.max_miss_rate: a token bucket holding one second's worth of Clerk calls for tokens not
/// in the cache. Thread safety: take() from any thread.
class miss_budget {
public:
    explicit miss_budget(std::uint64_t per_second)
        : rate_(static_cast<double>(per_second)), tokens_(rate_) {}
    bool take() {
        if (rate_ <= 0) {
            return true;  // unlimited
        }
        std::lock_guard lock(mu_);
        const auto now = steady::now();
        const std::chrono::duration<double> elapsed = now - last_;
        last_ = now;
        tokens_ = std::min(rate_, tokens_ + elapsed.count() * rate_);
        if (tokens_ < 1.0) {
            return false;
        }
        tokens_ -= 1.0;
        return true;
    }

private:
    std::mutex mu_;
    double rate_;
    double tokens_;
    steady::time_point last_ = steady::now();
};

struct auth_state {
    auth_state(net::any_io_executor ex, std::shared_ptr<const config::config> c,
               std::shared_ptr<core::verification_cache> vc, metrics& mm,
               std::shared_ptr<clerk_api> a, const core::clock& ck,
               std::shared_ptr<shared_cache> sc)
        : exec(std::move(ex)),
          cfg(std::move(c)),
          cache(std::move(vc)),
          m(mm),
          clk(ck),
          verifier(a, cfg->clerk, mm, ck),
          jwks(std::make_shared<jwks_provider>(exec, a, cfg->clerk, mm)),
          shared(std::move(sc)),
          misses(cfg->cache.max_miss_rate) {}

    net::any_io_executor exec;
    std::shared_ptr<const config::config> cfg;
    std::shared_ptr<core::verification_cache> cache;
    metrics& m;
    const core::clock& clk;
    clerk_verifier verifier;
    std::shared_ptr<jwks_provider> jwks;
    core::single_flight<auth_result> flights;
    std::shared_ptr<shared_cache> shared;  ///< cache.shared (Redis), or nullptr
    miss_budget misses;                    ///< cache.max_miss_rate
};
using state_ptr = std::shared_ptr<auth_state>;

/// JWT refusals that may turn into acceptances soon are not remembered.
bool jwt_refusal_cacheable(std::string_view reason) {
    return reason != core::jwt_reason::unknown_kid && reason != core::jwt_reason::not_yet_valid &&
           reason != core::jwt_reason::issued_in_future;
}

net::awaitable<verification> verify_jwt(state_ptr st, const std::string& token,
                                        core::token_type kind, steady::time_point deadline) {
    auto& provider = *st->jwks;
    auto keys = provider.current();
    if (!keys) {
        keys = co_await provider.refresh(deadline);
        if (!keys) {
            co_return verification{verification::status::unavailable, "jwks_unavailable", nullptr,
                                   false};
        }
    }
    auto skew = st->cfg->auth.clock_skew;
    auto r = core::verify_jwt(token, kind, *keys, st->clk.now(), skew);
    if (!r.ok && r.reason == core::jwt_reason::unknown_kid && !keys->matches_any_kid()) {
        // Key rotation: fetch the JWKS once (coalesced, at most once per second) and retry.
        auto fresh = co_await provider.refresh(deadline);
        if (fresh && fresh != keys) {
            r = core::verify_jwt(token, kind, *fresh, st->clk.now(), skew);
        }
    }
    if (r.ok) {
        co_return verification{verification::status::valid, "", std::move(r.id), true};
    }
    co_return verification{verification::status::invalid, r.reason, nullptr,
                           jwt_refusal_cacheable(r.reason)};
}

/// The leader's work for one token: re-check the cache (a flight may have completed between
/// the caller's lookup and its join), verify, store the outcome, fall back to stale entries.
net::awaitable<auth_result> lead(state_ptr st, core::token_digest key, token_copy token,
                                 core::token_class cls, steady::time_point deadline) {
    auto again = st->cache->lookup(key);
    if (again.result == core::cache_result::hit) {
        co_return make_result(decision_kind::allow, "", core::cache_result::hit, again.id);
    }
    if (again.result == core::cache_result::negative_hit) {
        co_return make_result(decision_kind::invalid_token, again.negative_reason,
                              core::cache_result::negative_hit);
    }

    // A token Clerk verifies (opaque) may have been verified by another replica: the shared
    // cache is asked first. JWTs are verified locally and never shared.
    const bool shareable = st->shared && cls.format == core::token_format::opaque;
    std::string shared_key;
    if (shareable) {
        shared_key = st->shared->key_for(token.s);
        const auto e = co_await st->shared->lookup(shared_key);
        if (e && e->id) {
            st->cache->put_positive(key, e->id, e->until_ms);
            co_return make_result(decision_kind::allow, "", core::cache_result::miss, e->id);
        }
        if (e) {
            st->cache->put_negative(key, e->negative_reason, e->until_ms);
            co_return make_result(decision_kind::invalid_token, e->negative_reason,
                                  core::cache_result::miss);
        }
    }

    // Not a ?: with co_await in both arms: GCC 12 destroys such temporaries twice.
    verification v;
    if (cls.format == core::token_format::jwt) {
        v = co_await verify_jwt(st, token.s, cls.type, deadline);
    } else {
        // A Clerk call for a token nobody here has seen: bounded by cache.max_miss_rate, so a
        // flood of random tokens cannot spend Clerk's rate limit (a 503, never a 401).
        if (!st->misses.take()) {
            co_return make_result(decision_kind::auth_unavailable, "miss_rate_limited",
                                  core::cache_result::miss);
        }
        v = co_await st->verifier.verify(cls.type, token.s, deadline);
    }
    switch (v.st) {
        case verification::status::valid:
            st->cache->put_positive(key, v.id);
            if (shareable) {
                st->shared->store_positive(std::move(shared_key), *v.id);
            }
            co_return make_result(decision_kind::allow, "", core::cache_result::miss, v.id);
        case verification::status::invalid:
            if (v.cacheable) {
                st->cache->put_negative(key, v.reason);
                if (shareable) {
                    st->shared->store_negative(std::move(shared_key), v.reason);
                }
            }
            co_return make_result(decision_kind::invalid_token, v.reason, core::cache_result::miss);
        case verification::status::unavailable:
            break;
    }
    if (st->cfg->cache.stale_if_error.count() > 0) {
        auto stale = st->cache->lookup_stale(key);
        if (stale.result == core::cache_result::stale && stale.id) {
            co_return make_result(decision_kind::allow, "", core::cache_result::stale, stale.id);
        }
    }
    co_return make_result(decision_kind::auth_unavailable, v.reason, core::cache_result::miss);
}

/// Recipient scoping (auth.audience, auth.authorized_parties), applied to every allowed result
/// — fresh, cached or stale — against the config this authenticator was built with: an
/// identity cached under an older config (a reload that added a list) is never reused for one
/// it does not satisfy. The verified identity itself stays cached, so a refused JWT costs no
/// signature check.
auth_result scoped(auth_result r, const config::config& cfg) {
    if (r.decision.kind != decision_kind::allow || !r.id) {
        return r;
    }
    if (!core::audience_allows(*r.id, cfg.auth.audience)) {
        auth_result refused =
            make_result(decision_kind::invalid_token, "audience_mismatch", r.cache);
        refused.type = r.type;
        return refused;
    }
    if (!core::authorized_party_allows(*r.id, cfg.auth.authorized_parties)) {
        auth_result refused =
            make_result(decision_kind::invalid_token, "authorized_party_mismatch", r.cache);
        refused.type = r.type;
        return refused;
    }
    return r;
}

class clerk_authenticator final : public authenticator {
public:
    explicit clerk_authenticator(state_ptr st) : st_(std::move(st)) {}
    ~clerk_authenticator() override { stop(); }

    /// Cache first (the token's digest is the only per-token work on a hit), then classify.
    std::optional<auth_result> authenticate_bearer_now(
        std::string_view token, const core::token_acceptance& accepts) override {
        probe p;
        return decide_now(token, accepts, p);
    }

    task<auth_result> authenticate_bearer(std::string_view token,
                                          const core::token_acceptance& accepts,
                                          steady::time_point deadline) override {
        probe p;
        if (auto now = decide_now(token, accepts, p)) {
            co_return std::move(*now);
        }
        auth_result r = co_await authenticate_with(p.key, p.look, token, p.cls, deadline);
        r.type = p.cls.type;
        co_return r;
    }

    task<auth_result> authenticate(std::string_view token, core::token_class cls,
                                   steady::time_point deadline) override {
        const core::token_digest key = process_hasher().digest(token);
        const auto look = st_->cache->lookup(key);
        co_return co_await authenticate_with(key, look, token, cls, deadline);
    }

    void start() override {
        st_->jwks->start();
        if (st_->shared) {
            st_->shared->start();
        }
    }

    void stop() override {
        st_->jwks->stop();
        if (st_->shared) {
            st_->shared->stop();
        }
        st_->verifier.api()->close_idle();
    }

private:
    /// What the miss path of authenticate_bearer needs from decide_now.
    struct probe {
        core::token_digest key{};
        core::cache_lookup look;
        core::token_class cls;
    };

    /// authenticate_bearer without I/O: the answer, or nullopt (a miss) with `p` filled in.
    std::optional<auth_result> decide_now(std::string_view token,
                                          const core::token_acceptance& accepts, probe& p) {
        p.key = process_hasher().digest(token);
        p.look = st_->cache->lookup(p.key);
        if (p.look.result == core::cache_result::hit) {
            // The type comes from the verified identity (a reload may have stopped accepting
            // it): no classification, no parsing.
            return answer_hit(p.look, accepts.accepts(p.look.id->type));
        }
        const auto c = core::classify_and_accept(token, accepts);
        if (!c.ok) {
            return refused_by_classification(c);
        }
        p.cls = c.cls;
        auto r = settle(p.look, c.cls);
        if (r) {
            r->type = c.cls.type;
        }
        return r;
    }

    /// The answer for a positive cache entry, counted as a hit; `accepted`: the config accepts
    /// the identity's type.
    auth_result answer_hit(const core::cache_lookup& look, bool accepted) {
        st_->m.cache_lookup(core::cache_result::hit);
        auth_result r =
            accepted ? make_result(decision_kind::allow, "", core::cache_result::hit, look.id)
                     : make_result(decision_kind::invalid_token, "token_type_not_accepted",
                                   core::cache_result::hit);
        r.type = look.id->type;
        return scoped(std::move(r), *st_->cfg);
    }

    /// The outcomes of authenticate_with that need no I/O; nullopt for a miss.
    std::optional<auth_result> settle(const core::cache_lookup& look, core::token_class cls) {
        // Classification yields neither (session tokens are JWTs, API keys opaque): fail closed.
        const bool possible = cls.format == core::token_format::jwt
                                  ? cls.type != core::token_type::api_key
                                  : cls.type != core::token_type::session_token;
        if (!possible) {
            return make_result(decision_kind::invalid_token, "malformed");
        }
        // JWTs (M2M, OAuth access tokens, session tokens) need the instance's signing key.
        if (cls.format == core::token_format::jwt && !st_->jwks->configured()) {
            return make_result(decision_kind::invalid_token, "jwt_not_supported");
        }
        if (look.result == core::cache_result::hit) {
            return answer_hit(look, true);  // the caller classified and accepted the type
        }
        if (look.result == core::cache_result::negative_hit) {
            st_->m.cache_lookup(core::cache_result::negative_hit);
            return make_result(decision_kind::invalid_token, look.negative_reason,
                               core::cache_result::negative_hit);
        }
        return std::nullopt;
    }

    /// `look` is the cache's answer for `key`, the digest of `token`.
    task<auth_result> authenticate_with(core::token_digest key, core::cache_lookup look,
                                        std::string_view token, core::token_class cls,
                                        steady::time_point deadline) {
        state_ptr st = st_;
        if (auto now = settle(look, cls)) {
            co_return std::move(*now);
        }

        // Miss: every concurrent caller for this token shares one verification.
        // The lambdas are named, outside the co_await expression: GCC 12 destroys the
        // captures of a closure temporary in a co_await full-expression twice.
        token_copy copy(token);
        auto make_lead = [st, key, &copy, cls, deadline] {
            return lead(st, key, copy, cls, deadline);
        };
        auto on_error = [] {
            return make_result(decision_kind::auth_unavailable, "internal_error");
        };
        task<auth_result> flight = join_flight<auth_result>(
            st->flights, key, net::make_strand(st->exec), std::move(make_lead), on_error);
        auth_result r = co_await std::move(flight);
        // One lookup result per request: miss, or stale when the outage fallback served it
        // (or what the leader's re-check found).
        st->m.cache_lookup(r.cache.value_or(core::cache_result::miss));
        co_return scoped(std::move(r), *st->cfg);
    }

    state_ptr st_;
};

}  // namespace

std::shared_ptr<authenticator> make_clerk_authenticator(
    net::any_io_executor exec, std::shared_ptr<const config::config> cfg,
    std::shared_ptr<core::verification_cache> cache, metrics& m, std::shared_ptr<clerk_api> api,
    const core::clock& clk, std::shared_ptr<shared_cache> shared) {
    auto st = std::make_shared<auth_state>(std::move(exec), std::move(cfg), std::move(cache), m,
                                           std::move(api), clk, std::move(shared));
    return std::make_shared<clerk_authenticator>(std::move(st));
}

}  // namespace clerk::proxy
