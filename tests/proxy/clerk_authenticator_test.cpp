#include "proxy/auth/clerk_authenticator.hpp"

#include "fakes/fake_clock.hpp"
#include "proxy/auth/clerk_verifier.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace net = boost::asio;
using namespace clerk;
using namespace std::chrono_literals;
using proxy::clerk_http_reply;
using proxy::clerk_http_request;
using steady = std::chrono::steady_clock;

namespace {

const core::token_class opaque_m2m{core::token_type::m2m_token, core::token_format::opaque};

std::string token_json(std::string_view id, long long expiration_ms = 0) {
    nlohmann::json j{{"object", "machine_to_machine_token"},
                     {"id", id},
                     {"subject", "mch_a"},
                     {"scopes", {"mch_b"}},
                     {"claims", {{"tenant", "t1"}}},
                     {"revoked", false},
                     {"expired", false},
                     {"expiration", nullptr}};
    if (expiration_ms != 0) {
        j["expiration"] = expiration_ms;
    }
    return j.dump();
}

clerk_http_reply reply(int status, std::string body = "", std::string retry_after = "") {
    clerk_http_reply r;
    r.status = status;
    r.body = std::move(body);
    r.retry_after = std::move(retry_after);
    return r;
}

/// Scripted Clerk: answers from `script` in order (the last entry repeats), after `delay`.
class fake_clerk final : public proxy::clerk_api {
public:
    net::awaitable<clerk_http_reply> call(clerk_http_request req,
                                          steady::time_point deadline) override {
        std::size_t n = calls.fetch_add(1);
        {
            std::lock_guard lock(mu);
            requests.push_back({req.verb, req.path, req.body, std::string(req.bearer)});
            deadlines.push_back(deadline);
        }
        if (delay.count() > 0) {
            net::steady_timer t(co_await net::this_coro::executor, delay);
            co_await t.async_wait(net::use_awaitable);
        }
        std::lock_guard lock(mu);
        if (script.empty()) {
            co_return reply(599);
        }
        co_return script[std::min(n, script.size() - 1)];
    }

    struct recorded {
        clerk_http_request::method verb;
        std::string path, body, bearer;
    };
    std::atomic<std::size_t> calls{0};
    std::chrono::milliseconds delay{0};
    std::mutex mu;
    std::vector<clerk_http_reply> script;
    std::vector<recorded> requests;
    std::vector<steady::time_point> deadlines;
};

struct fixture {
    explicit fixture(std::function<void(config::config&)> tweak = {}) {
        auto c = std::make_shared<config::config>();
        c->clerk.api_url = "http://127.0.0.1:1";
        c->clerk.machine_secret_key = "ak_machine";
        c->clerk.secret_key = "";
        c->clerk.timeout = 500ms;
        c->clerk.retries = 2;
        c->cache.ttl = 60s;
        c->cache.negative_ttl = 10s;
        if (tweak) {
            tweak(*c);
        }
        core::cache_options opts;
        opts.ttl = c->cache.ttl;
        opts.negative_ttl = c->cache.negative_ttl;
        opts.stale_if_error = c->cache.stale_if_error;
        cache = std::make_shared<core::verification_cache>(opts, clk);
        cfg = c;
        clerk = std::make_shared<fake_clerk>();
        auth = proxy::make_clerk_authenticator(ioc.get_executor(), cfg, cache, m, clerk, clk);
    }

    proxy::auth_result check(std::string_view token, core::token_class cls = opaque_m2m,
                             std::chrono::milliseconds budget = 2s) {
        std::optional<proxy::auth_result> out;
        net::co_spawn(
            ioc,
            [&]() -> proxy::task<void> {
                out = co_await auth->authenticate(token, cls, steady::now() + budget);
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
        ioc.restart();
        ioc.run();
        REQUIRE(out);
        return *out;
    }

    net::io_context ioc;
    testing::fake_clock clk;
    proxy::metrics m;
    std::shared_ptr<const config::config> cfg;
    std::shared_ptr<core::verification_cache> cache;
    std::shared_ptr<fake_clerk> clerk;
    std::shared_ptr<proxy::authenticator> auth;
};

long long now_ms(const testing::fake_clock& c) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(c.now().time_since_epoch())
        .count();
}

}  // namespace

TEST_CASE("valid opaque token: one Clerk call, then cache hits", "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(200, token_json("mt_1"))};
    auto r = f.check("mt_secret");
    REQUIRE(r.decision.allowed());
    REQUIRE(r.id);
    CHECK(r.id->who->subject == "mch_a");
    CHECK(r.id->token_id == "mt_1");
    CHECK(r.cache == core::cache_result::miss);
    for (int i = 0; i < 50; ++i) {
        auto again = f.check("mt_secret");
        CHECK(again.decision.allowed());
        CHECK(again.cache == core::cache_result::hit);
    }
    CHECK(f.clerk->calls == 1);
    REQUIRE(f.clerk->requests.size() == 1);
    const auto& req = f.clerk->requests[0];
    CHECK(req.verb == clerk_http_request::method::post);
    CHECK(req.path == "/m2m_tokens/verify");
    CHECK(req.body == R"({"token":"mt_secret"})");
    CHECK(req.bearer == "ak_machine");
    auto metrics = f.m.render();
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="hit"} 50)") != std::string::npos);
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="miss"} 1)") != std::string::npos);
}

TEST_CASE("authenticate_bearer_now answers what authenticate_bearer would, without I/O",
          "[clerk_authenticator]") {
    fixture f;
    const core::token_acceptance m2m;  // m2m_token only
    f.clerk->script = {reply(200, token_json("mt_1")),
                       reply(404, R"({"errors":[{"code":"resource_not_found"}]})")};
    // Not cached yet: no answer without I/O, and nothing counted.
    CHECK_FALSE(f.auth->authenticate_bearer_now("mt_secret", m2m));
    const auto before = f.m.render();
    CHECK(before.find(R"(clerk_proxy_cache_lookups_total{result="hit"} 0)") != std::string::npos);
    CHECK(before.find(R"(clerk_proxy_cache_lookups_total{result="miss"} 0)") != std::string::npos);
    auto bearer = [&](std::string_view token) {
        std::optional<proxy::auth_result> out;
        net::co_spawn(
            f.ioc,
            [&]() -> proxy::task<void> {
                out = co_await f.auth->authenticate_bearer(token, m2m, steady::now() + 2s);
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
        f.ioc.restart();
        f.ioc.run();
        REQUIRE(out);
        return *out;
    };
    const auto first = bearer("mt_secret");
    REQUIRE(first.decision.allowed());
    CHECK(first.cache == core::cache_result::miss);
    CHECK(bearer("mt_unknown").decision.reason == "not_found");
    CHECK(f.clerk->calls == 2);

    // Cached: the same identity, as a hit, counted once per answer.
    const auto hit = f.auth->authenticate_bearer_now("mt_secret", m2m);
    REQUIRE(hit);
    CHECK(hit->decision.allowed());
    CHECK(hit->cache == core::cache_result::hit);
    CHECK(hit->type == core::token_type::m2m_token);
    CHECK(hit->id == first.id);
    // Negatively cached, malformed, and a type not accepted: refused at once, as the coroutine
    // path refuses them.
    const auto negative = f.auth->authenticate_bearer_now("mt_unknown", m2m);
    REQUIRE(negative);
    CHECK(negative->decision.reason == "not_found");
    CHECK(negative->cache == core::cache_result::negative_hit);
    const auto malformed = f.auth->authenticate_bearer_now("not a token", m2m);
    REQUIRE(malformed);
    CHECK(malformed->decision.kind == core::decision_kind::invalid_token);
    CHECK(malformed->decision.reason == bearer("not a token").decision.reason);
    const auto api_key = f.auth->authenticate_bearer_now("ak_abc", m2m);
    REQUIRE(api_key);
    CHECK(api_key->decision.reason == bearer("ak_abc").decision.reason);
    CHECK(f.clerk->calls == 2);
    const auto metrics = f.m.render();
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="hit"} 1)") != std::string::npos);
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="negative_hit"} 1)") !=
          std::string::npos);
    CHECK(metrics.find(R"(clerk_proxy_cache_lookups_total{result="miss"} 2)") != std::string::npos);
}

TEST_CASE("the instance key is used without a machine key", "[clerk_authenticator]") {
    fixture f([](config::config& c) {
        c.clerk.machine_secret_key = "";
        c.clerk.secret_key = "sk_test_x";
    });
    f.clerk->script = {reply(200, token_json("mt_1"))};
    CHECK(f.check("mt_secret").decision.allowed());
    CHECK(f.clerk->requests.at(0).bearer == "sk_test_x");
}

TEST_CASE("unknown token is negatively cached", "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(404, R"({"errors":[{"code":"resource_not_found"}]})")};
    auto r = f.check("mt_unknown");
    CHECK(r.decision.kind == core::decision_kind::invalid_token);
    CHECK(r.decision.reason == "not_found");
    auto again = f.check("mt_unknown");
    CHECK(again.decision.kind == core::decision_kind::invalid_token);
    CHECK(again.decision.reason == "not_found");
    CHECK(again.cache == core::cache_result::negative_hit);
    CHECK(f.clerk->calls == 1);
    f.clk.advance(11s);  // past negative_ttl
    f.check("mt_unknown");
    CHECK(f.clerk->calls == 2);
}

TEST_CASE("revoked in a 200 is cached as revoked", "[clerk_authenticator]") {
    fixture f;
    auto body = nlohmann::json::parse(token_json("mt_1"));
    body["revoked"] = true;
    f.clerk->script = {reply(200, body.dump())};
    CHECK(f.check("mt_r").decision.reason == "revoked");
    CHECK(f.check("mt_r").cache == core::cache_result::negative_hit);
    CHECK(f.clerk->calls == 1);
}

TEST_CASE("a positive entry never outlives the token's expiration", "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(200, token_json("mt_1", now_ms(f.clk) + 5000))};
    CHECK(f.check("mt_e").decision.allowed());
    CHECK(f.check("mt_e").cache == core::cache_result::hit);
    f.clk.advance(6s);
    auto r = f.check("mt_e");  // Clerk still says 200, but the expiration is now in the past
    CHECK(r.decision.kind == core::decision_kind::invalid_token);
    CHECK(r.decision.reason == "expired");
    CHECK(f.clerk->calls == 2);
}

TEST_CASE("5xx and transport errors are retried, then 503", "[clerk_authenticator]") {
    SECTION("recovers on retry") {
        fixture f;
        clerk_http_reply timeout;
        timeout.error = proxy::clerk_transport_error::timeout;
        f.clerk->script = {reply(500), timeout, reply(200, token_json("mt_1"))};
        CHECK(f.check("mt_x").decision.allowed());
        CHECK(f.clerk->calls == 3);
        auto metrics = f.m.render();
        CHECK(metrics.find(R"(clerk_proxy_clerk_requests_total{status="500"} 1)") !=
              std::string::npos);
        CHECK(metrics.find(R"(clerk_proxy_clerk_requests_total{status="200"} 1)") !=
              std::string::npos);
    }
    SECTION("gives up after clerk.retries") {
        fixture f;
        f.clerk->script = {reply(503)};
        auto r = f.check("mt_x");
        CHECK(r.decision.kind == core::decision_kind::auth_unavailable);
        CHECK(f.clerk->calls == 3);  // 1 + retries
        CHECK(f.cache->size() == 0);
        CHECK(f.cache->negative_size() == 0);
        f.clerk->script = {reply(200, token_json("mt_1"))};
        CHECK(f.check("mt_x").decision.allowed());  // nothing was cached: recovery is immediate
    }
    SECTION("malformed 200 is never accepted") {
        fixture f([](config::config& c) { c.clerk.retries = 0; });
        f.clerk->script = {reply(200, R"({"object":"machine_to_machine_token")")};
        CHECK(f.check("mt_x").decision.kind == core::decision_kind::auth_unavailable);
        CHECK(f.clerk->calls == 1);
    }
    SECTION("retries stop at the deadline") {
        fixture f([](config::config& c) { c.clerk.retries = 50; });
        f.clerk->script = {reply(500)};
        auto start = steady::now();
        auto r = f.check("mt_x", opaque_m2m, 300ms);
        CHECK(r.decision.kind == core::decision_kind::auth_unavailable);
        CHECK(steady::now() - start < 1s);
        CHECK(f.clerk->calls < 10);
    }
}

TEST_CASE("per-call timeout is min(clerk.timeout, deadline)", "[clerk_authenticator]") {
    fixture f([](config::config& c) { c.clerk.timeout = 10s; });
    f.clerk->script = {reply(200, token_json("mt_1"))};
    auto before = steady::now();
    f.check("mt_x", opaque_m2m, 700ms);
    REQUIRE(f.clerk->deadlines.size() == 1);
    CHECK(f.clerk->deadlines[0] - before <= 710ms);
}

TEST_CASE("429 honours Retry-After when it fits", "[clerk_authenticator]") {
    SECTION("fits") {
        fixture f;
        f.clerk->script = {reply(429, "", "0"), reply(200, token_json("mt_1"))};
        CHECK(f.check("mt_x").decision.allowed());
        CHECK(f.clerk->calls == 2);
    }
    SECTION("does not fit") {
        fixture f;
        f.clerk->script = {reply(429, "", "30"), reply(200, token_json("mt_1"))};
        auto start = steady::now();
        auto r = f.check("mt_x");
        CHECK(r.decision.kind == core::decision_kind::auth_unavailable);
        CHECK(f.clerk->calls == 1);
        CHECK(steady::now() - start < 1s);
    }
}

TEST_CASE("401/403: our key is wrong, nothing cached", "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(401, R"({"errors":[{"code":"machine_secret_key_invalid"}]})")};
    auto r = f.check("mt_x");
    CHECK(r.decision.kind == core::decision_kind::auth_unavailable);
    CHECK(f.clerk->calls == 1);  // not retried
    f.check("mt_x");
    CHECK(f.clerk->calls == 2);  // not cached
    CHECK(f.cache->negative_size() == 0);
}

TEST_CASE("stale_if_error serves known tokens through an outage", "[clerk_authenticator]") {
    fixture f([](config::config& c) {
        c.cache.ttl = 1s;
        c.cache.stale_if_error = 60s;
        c.clerk.retries = 0;
    });
    f.clerk->script = {reply(200, token_json("mt_1"))};
    REQUIRE(f.check("mt_known").decision.allowed());
    f.clk.advance(2s);  // past ttl
    f.clerk->script = {reply(500)};
    auto r = f.check("mt_known");
    CHECK(r.decision.allowed());
    CHECK(r.cache == core::cache_result::stale);
    REQUIRE(r.id);
    CHECK(r.id->token_id == "mt_1");
    auto unknown = f.check("mt_unknown");
    CHECK(unknown.decision.kind == core::decision_kind::auth_unavailable);
    f.clk.advance(61s);  // past ttl + stale_if_error
    CHECK(f.check("mt_known").decision.kind == core::decision_kind::auth_unavailable);
    CHECK(f.m.render().find(R"(clerk_proxy_cache_lookups_total{result="stale"} 1)") !=
          std::string::npos);
}

TEST_CASE("without stale_if_error an outage is a 503 even for known tokens",
          "[clerk_authenticator]") {
    fixture f([](config::config& c) {
        c.cache.ttl = 1s;
        c.clerk.retries = 0;
    });
    f.clerk->script = {reply(200, token_json("mt_1"))};
    REQUIRE(f.check("mt_known").decision.allowed());
    f.clk.advance(2s);
    f.clerk->script = {reply(500)};
    CHECK(f.check("mt_known").decision.kind == core::decision_kind::auth_unavailable);
}

TEST_CASE("impossible classes and JWTs without keys fail closed without a call",
          "[clerk_authenticator]") {
    fixture f;
    f.clerk->script = {reply(200, token_json("mt_1"))};
    for (auto cls : {core::token_class{core::token_type::session_token, core::token_format::opaque},
                     core::token_class{core::token_type::api_key, core::token_format::jwt}}) {
        auto r = f.check("x.y.z", cls);
        CHECK(r.decision.kind == core::decision_kind::invalid_token);
        CHECK(r.decision.reason == "malformed");
        CHECK_FALSE(r.cache);
    }
    // No clerk.jwt_key and no clerk.secret_key: no JWT of any type can be verified.
    for (auto type : {core::token_type::m2m_token, core::token_type::oauth_token,
                      core::token_type::session_token}) {
        auto jwt = f.check("a.b.c", core::token_class{type, core::token_format::jwt});
        CHECK(jwt.decision.kind == core::decision_kind::invalid_token);
        CHECK(jwt.decision.reason == "jwt_not_supported");
    }
    CHECK(f.clerk->calls == 0);
}

TEST_CASE("API keys and opaque OAuth tokens: their endpoint, body field and the instance key",
          "[clerk_authenticator]") {
    fixture f([](config::config& c) { c.clerk.secret_key = "sk_instance"; });
    SECTION("api_key") {
        f.clerk->script = {reply(200, nlohmann::json{{"object", "api_key"},
                                                     {"id", "ak_id1"},
                                                     {"subject", "user_1"},
                                                     {"scopes", {"read"}},
                                                     {"claims", nullptr},
                                                     {"revoked", false},
                                                     {"expired", false},
                                                     {"expiration", nullptr}}
                                          .dump())};
        const auto r = f.check(
            "ak_secret", core::token_class{core::token_type::api_key, core::token_format::opaque});
        REQUIRE(r.decision.allowed());
        CHECK(r.id->type == core::token_type::api_key);
        CHECK(r.id->who->subject == "user_1");
        REQUIRE(f.clerk->requests.size() == 1);
        CHECK(f.clerk->requests[0].path == "/api_keys/verify");
        CHECK(f.clerk->requests[0].bearer == "sk_instance");  // never the machine key
        CHECK(nlohmann::json::parse(f.clerk->requests[0].body) ==
              nlohmann::json{{"secret", "ak_secret"}});
    }
    SECTION("oauth_token, and {\"active\": false} is a refusal") {
        f.clerk->script = {reply(200, R"({"active": false})")};
        const auto r = f.check(
            "oat_x", core::token_class{core::token_type::oauth_token, core::token_format::opaque});
        CHECK(r.decision.kind == core::decision_kind::invalid_token);
        CHECK(r.decision.reason == "inactive");
        REQUIRE(f.clerk->requests.size() == 1);
        CHECK(f.clerk->requests[0].path == "/oauth_applications/access_tokens/verify");
        CHECK(f.clerk->requests[0].bearer == "sk_instance");
        CHECK(nlohmann::json::parse(f.clerk->requests[0].body) ==
              nlohmann::json{{"access_token", "oat_x"}});
    }
}

TEST_CASE("cache.max_miss_rate bounds Clerk calls for unknown tokens; past it 503",
          "[clerk_authenticator]") {
    fixture f([](config::config& c) { c.cache.max_miss_rate = 5; });
    f.clerk->script = {reply(404, "{}")};
    int limited = 0;
    for (int i = 0; i < 50; ++i) {
        const auto r = f.check("mt_flood" + std::to_string(i));
        if (r.decision.kind == core::decision_kind::auth_unavailable) {
            CHECK(r.decision.reason == "miss_rate_limited");
            ++limited;
        } else {
            CHECK(r.decision.kind == core::decision_kind::invalid_token);
        }
    }
    // A bucket of one second's worth (5): a burst of 50 makes at most 5 calls (plus what
    // refills while the loop runs, well under a second).
    CHECK(f.clerk->calls <= 6);
    CHECK(limited >= 44);
}

TEST_CASE("concurrent misses across threads make exactly one Clerk call", "[clerk_authenticator]") {
    fixture f;
    f.clerk->delay = 50ms;
    f.clerk->script = {reply(200, token_json("mt_1"))};
    constexpr int n = 200;
    std::atomic<int> allowed{0}, done{0};
    for (int i = 0; i < n; ++i) {
        net::co_spawn(
            f.ioc,
            [&]() -> proxy::task<void> {
                auto r = co_await f.auth->authenticate("mt_shared", opaque_m2m, steady::now() + 2s);
                if (r.decision.allowed() && r.id && r.id->token_id == "mt_1") {
                    ++allowed;
                }
                ++done;
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
    }
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&] { f.ioc.run(); });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(done == n);
    CHECK(allowed == n);
    CHECK(f.clerk->calls == 1);
}

TEST_CASE("concurrent misses on distinct tokens are not coalesced", "[clerk_authenticator]") {
    fixture f;
    f.clerk->delay = 20ms;
    f.clerk->script = {reply(200, token_json("mt_1"))};
    std::atomic<int> done{0};
    for (int i = 0; i < 20; ++i) {
        net::co_spawn(
            f.ioc,
            [&, i]() -> proxy::task<void> {
                std::string tok = "mt_tok" + std::to_string(i % 10);
                co_await f.auth->authenticate(tok, opaque_m2m, steady::now() + 2s);
                ++done;
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
    }
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) {
        threads.emplace_back([&] { f.ioc.run(); });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(done == 20);
    CHECK(f.clerk->calls == 10);
}

TEST_CASE("backoff is jittered exponential", "[clerk_authenticator]") {
    for (int i = 0; i < 100; ++i) {
        auto b0 = proxy::clerk_verifier::backoff(0);
        CHECK(b0 >= 25ms);
        CHECK(b0 <= 75ms);
        auto b2 = proxy::clerk_verifier::backoff(2);
        CHECK(b2 >= 100ms);
        CHECK(b2 <= 300ms);
    }
}
