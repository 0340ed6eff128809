// Security: bounded resources (oversized heads, slowloris, cache flooding), secrets never leaked.
#include "clerk_knobs.hpp"
#include "harness.hpp"
#include "security_fixtures.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <regex>
#include <thread>

using namespace clerk::it;
using namespace clerk::it::security_fixtures;

namespace {

std::string metrics_text(std::uint16_t admin_port) {
    http_client c(admin_port);
    auto r = c.get("/metrics");
    REQUIRE(r.status == 200);
    return r.body;
}

const std::string hit_series = R"(clerk_proxy_cache_lookups_total{result="hit"})";

}  // namespace

// --- oversized heads

TEST_CASE("security: oversized heads are 431 and nothing is forwarded", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(
        dir, sec_config(up.url(), {}, "mch_admin", "limits:\n  max_header_bytes: 2048\n"));
    std::string many;
    for (int i = 0; i < 200; ++i) {
        many += "X-Clerk-Subject: spoof" + std::to_string(i) + "\r\n";
    }
    const std::vector<std::string> heads{
        "GET /public/x HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nHost: a\r\n" + many + "\r\n",
        "GET /public/" + std::string(4000, 'p') + " HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer mt_" + std::string(4000, 'x') +
            "\r\n\r\n",
        "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Big: " +
            std::string(4000, 'a') + "\r\n\r\nhello" + smuggled,
    };
    for (const auto& head : heads) {
        INFO(head.substr(0, 60));
        http_client c(proxy.port(), short_timeout());
        c.send_raw(head);
        const auto r = c.read_response();
        CHECK(r.status == 431);
        CHECK(body_json(r)["error"] == "headers_too_large");
        CHECK_FALSE(r.keep_alive);
        CHECK(c.closed_by_peer());
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

// --- slowloris

TEST_CASE("security: a head dribbled byte by byte is closed at header_timeout", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url(), {}, "mch_admin",
                                        "limits:\n  header_timeout: 500ms\n  idle_timeout: 10s\n"));
    const std::string head =
        "GET /public/slow HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(400, 'a') + "\r\n\r\n";
    // Once on a new connection, once for the second request of a kept-alive connection (the
    // header_timeout runs from its first byte, not from the last).
    for (const bool kept_alive : {false, true}) {
        INFO("kept alive: " << kept_alive);
        http_client c(proxy.port(), short_timeout());
        if (kept_alive) {
            REQUIRE(c.get("/public/first").status == 200);
        }
        const auto start = std::chrono::steady_clock::now();
        std::optional<std::chrono::steady_clock::duration> closed_after;
        // 20 ms a byte: the whole head would take ~8.5 s, far beyond the 500 ms limit.
        for (std::size_t i = 0; i + 4 < head.size(); ++i) {
            try {
                c.send_raw(head.substr(i, 1));
            } catch (const std::exception&) {
                closed_after = std::chrono::steady_clock::now() - start;
                break;
            }
            std::this_thread::sleep_for(20ms);  // the dribble itself, not a synchronization
        }
        REQUIRE(closed_after);
        CHECK(*closed_after >= 400ms);
        CHECK(*closed_after < 3s);
        CHECK(c.closed_by_peer());
    }
    CHECK(up.heads_received() == 1);  // only /public/first
    CHECK(up.requests().at(0).target == "/public/first");
}

// A request body is bounded two ways: each read by limits.idle_timeout, and all reads together by
// header_timeout + bytes / limits.min_body_rate (time blocked on the client only). A body that
// keeps dribbling below the rate is cut; with min_body_rate: 0 it is relayed as long as it
// dribbles, and one that stops is cut after idle_timeout.
TEST_CASE("security: a dribbled request body below min_body_rate is cut", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    // idle_timeout (2 s) is far above the 100 ms between bytes: only the rate check can cut.
    proxy_process proxy(dir, sec_config(up.url(), {}, "mch_admin",
                                        "limits:\n  header_timeout: 300ms\n  idle_timeout: 2s\n"
                                        "  min_body_rate: 1024\n"));
    http_client c(proxy.port(), short_timeout());
    c.send_raw("POST /public/drip HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n");
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::duration> closed_after;
    int sent = 0;
    // 10 bytes a second; the whole body would take 10 s. The allowance is 300 ms + ~0 s.
    for (; sent < 100; ++sent) {
        std::this_thread::sleep_for(100ms);  // the dribble itself, not a synchronization
        try {
            c.send_raw("b");
        } catch (const std::exception&) {
            closed_after = std::chrono::steady_clock::now() - start;
            break;
        }
    }
    REQUIRE(closed_after);
    CHECK(*closed_after >= 300ms);
    CHECK(*closed_after < 2s);  // before idle_timeout could have cut anything
    CHECK(c.closed_by_peer());
    // The upstream got the head and at most the bytes dribbled before the cut, never the body.
    REQUIRE(up.wait_for_requests(1));
    CHECK(up.requests().at(0).target == "/public/drip");
    CHECK(up.requests().at(0).body_size < 100);
    CHECK(up.requests().at(0).body_size <= static_cast<std::uint64_t>(sent));
}

TEST_CASE("security: with min_body_rate 0 a dribbled body is bounded per read by idle_timeout",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url(), {}, "mch_admin",
                                        "limits:\n  header_timeout: 300ms\n  idle_timeout: 700ms\n"
                                        "  min_body_rate: 0\n"));
    SECTION("a body that keeps dribbling past header_timeout and idle_timeout is relayed") {
        http_client c(proxy.port(), short_timeout());
        const std::string body(20, 'b');
        c.send_raw("POST /public/drip HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n");
        const auto start = std::chrono::steady_clock::now();
        for (char ch : body) {
            std::this_thread::sleep_for(100ms);  // the dribble: 2 s in all
            c.send_raw(std::string(1, ch));
        }
        CHECK(std::chrono::steady_clock::now() - start > 1500ms);
        CHECK(c.read_response().status == 200);
        REQUIRE(up.wait_for_requests(1));
        CHECK(up.requests().at(0).body_size == 20);
        CHECK(up.requests().at(0).body_sha256 == sha256_hex(body));
    }
    SECTION("a body that stops is cut after idle_timeout") {
        http_client c(proxy.port(), short_timeout());
        c.send_raw("POST /public/stall HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\nhello");
        const auto start = std::chrono::steady_clock::now();
        CHECK(c.closed_by_peer());
        const auto took = std::chrono::steady_clock::now() - start;
        CHECK(took >= 500ms);
        CHECK(took < 3s);
        // The upstream saw the head and the 5 bytes, then its connection closed: an incomplete
        // request it must not act on.
        REQUIRE(up.wait_for_requests(1));
        CHECK(up.requests().at(0).target == "/public/stall");
        CHECK(up.requests().at(0).body_size == 5);
    }
}

// --- cache flooding

TEST_CASE("security: 50000 invalid tokens do not evict a valid cache entry", "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir,
                        env.config("cache:\n  max_entries: 1000\n  ttl: 1h\n  negative_ttl: 60s\n"
                                   "log:\n  access_log: false\nthreads: 2\n"));
    const std::string token = env.knobs.mint(env.c_id)["token"];
    http_client c(proxy.port(), short_timeout());
    REQUIRE(c.get("/api/x", {{"Authorization", "Bearer " + token}}).status == 200);
    REQUIRE(env.knobs.verify_calls() == 1);
    const double hits_before = metric(proxy.admin_port(), hit_series);

    constexpr int threads_n = 8;
    constexpr int per_thread = 50000 / threads_n;
    std::atomic<int> refused{0};
    std::atomic<int> other{0};
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < threads_n; ++t) {
        threads.emplace_back([&, t] {
            try {
                http_client tc(proxy.port());
                for (int i = 0; i < per_thread; ++i) {
                    char unknown[40];
                    std::snprintf(unknown, sizeof unknown, "mt_%02d%030d", t, i);
                    const auto r =
                        tc.get("/api/x", {{"Authorization", std::string("Bearer ") + unknown}});
                    (r.status == 401 ? refused : other)++;
                }
            } catch (...) {
                ++other;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    const auto took = std::chrono::steady_clock::now() - start;
    WARN("50000 invalid tokens took "
         << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(refused == threads_n * per_thread);
    CHECK(other == 0);
    const long calls = env.knobs.verify_calls();
    CHECK(calls >= 1 + threads_n * per_thread);  // each unknown token: a Clerk call

    // The valid token is still cached: no Clerk call, one more hit. (A new connection: the first
    // one may have outlived idle_timeout during a slow flood, e.g. under ASan.)
    http_client after(proxy.port(), short_timeout());
    CHECK(after.get("/api/x", {{"Authorization", "Bearer " + token}}).status == 200);
    CHECK(env.knobs.verify_calls() == calls);
    CHECK(metric(proxy.admin_port(), hit_series) == hits_before + 1);
    CHECK(env.up.requests().size() == 2);
}

// --- secrets never leave the process

TEST_CASE("security: tokens and keys never appear in logs metrics or responses", "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir, env.config("log:\n  level: trace\n  format: json\n"));
    auto valid_tok = env.knobs.mint(env.c_id, {{"claims", {{"tenant", "t1"}}}});
    const std::string valid = valid_tok["token"];
    auto revoked_tok = env.knobs.mint(env.c_id);
    env.knobs.revoke(revoked_tok["id"]);
    const std::string revoked = revoked_tok["token"];
    const std::string jwt = env.knobs.mint(env.c_id, {{"token_format", "jwt"}})["token"];
    std::string forged = jwt;
    forged.back() = forged.back() == 'A' ? 'B' : 'A';
    const std::string unknown = "mt_unknownunknownunknown0123456789";
    const std::string malformed = "mt_malformed!secretpart";
    const std::string oversized = "mt_" + std::string(5000, 'q');
    const std::string failing = env.knobs.mint(env.c_id)["token"];
    const std::string in_query = env.knobs.mint(env.c_id)["token"];
    const std::vector<std::string> secrets{valid,     revoked,   jwt,     forged,   unknown,
                                           malformed, oversized, failing, in_query, instance_key};

    std::vector<http_response> responses;
    http_client c(proxy.port(), short_timeout());
    const auto bearer = [](const std::string& t) {
        return http_client::header_list{{"Authorization", "Bearer " + t}};
    };
    responses.push_back(c.get("/api/x", bearer(valid)));
    responses.push_back(c.get("/admin/x", bearer(valid)));  // cached, policy allows
    responses.push_back(c.get("/api/x", bearer(revoked)));
    responses.push_back(c.get("/api/x", bearer(jwt)));
    responses.push_back(c.get("/api/x", bearer(forged)));
    responses.push_back(c.get("/api/x", bearer(unknown)));
    responses.push_back(c.get("/api/x", bearer(unknown)));  // negative hit
    responses.push_back(c.get("/api/x", bearer(malformed)));
    responses.push_back(c.get("/api/x", bearer(oversized)));
    responses.push_back(c.get("/api/x?access_token=" + in_query));
    responses.push_back(c.get("/public/x?token=" + in_query, bearer(valid)));
    for (const std::string mode : {"status", "hang", "close", "garbage"}) {
        env.knobs.fail(1000, mode, 500);
        responses.push_back(c.get("/api/x", bearer(failing)));
        env.knobs.fail(0, "status");
    }
    env.knobs.fail(1000, "status", 401);  // Clerk says our key is wrong
    responses.push_back(c.get("/api/x", bearer(failing)));
    env.knobs.fail(0, "status");

    const std::vector<int> statuses{200, 200, 401, 200, 401, 401, 401, 401,
                                    401, 401, 200, 503, 503, 503, 503, 503};
    REQUIRE(responses.size() == statuses.size());
    for (std::size_t i = 0; i < responses.size(); ++i) {
        INFO("response " << i << ": " << responses[i].body);
        CHECK(responses[i].status == statuses[i]);
    }

    // The upstream receives no token either (forward_authorization is false) except the query
    // string of the auth: none request, which is the client's own business.
    for (const auto& seen : env.up.requests()) {
        CHECK(seen.count("Authorization") == 0);
    }

    const std::string metrics = metrics_text(proxy.admin_port());
    // Every request's access-log line is out (it follows the response).
    for (const auto& r : responses) {
        CHECK(proxy.proc().wait_for_line(std::regex("\"request_id\":\"" + r.header("X-Request-Id")),
                                         5s));
    }
    const std::string output = proxy.proc().output();
    for (const auto& s : secrets) {
        // The whole secret, and its last 20 characters (the random part) to catch a copy that
        // was truncated or had its prefix cut.
        for (const auto& probe : {s, s.substr(s.size() > 20 ? s.size() - 20 : 0)}) {
            INFO("secret " << probe.substr(0, 40));
            CHECK(output.find(probe) == std::string::npos);
            CHECK(metrics.find(probe) == std::string::npos);
            for (const auto& r : responses) {
                CHECK(r.body.find(probe) == std::string::npos);
                for (const auto& [k, v] : r.headers) {
                    CHECK(v.find(probe) == std::string::npos);
                }
            }
        }
    }
}
