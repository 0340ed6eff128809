#include "core/single_flight.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <barrier>
#include <latch>
#include <string>
#include <thread>
#include <vector>

namespace {

using clerk::core::single_flight;
using clerk::core::token_digest;

token_digest key_of(std::uint8_t b) {
    token_digest d{};
    d.fill(b);
    return d;
}

}  // namespace

TEST_CASE("single_flight: first join leads, followers get the leader's result once",
          "[single_flight]") {
    single_flight<std::string> sf;
    const auto k = key_of(1);
    std::vector<std::string> got;

    CHECK(sf.join(k, [&](const std::string&) { FAIL("the leader's callback is never queued"); }));
    CHECK(sf.in_flight() == 1);
    for (int i = 0; i < 3; ++i) {
        CHECK_FALSE(sf.join(k, [&](const std::string& r) { got.push_back(r); }));
    }
    CHECK(got.empty());  // nothing delivered before complete()

    sf.complete(k, "verified");
    CHECK(got == std::vector<std::string>{"verified", "verified", "verified"});
    CHECK(sf.in_flight() == 0);

    // A second complete() for a forgotten key delivers nothing again.
    sf.complete(k, "again");
    CHECK(got.size() == 3);
}

TEST_CASE("single_flight: the key is forgotten after complete", "[single_flight]") {
    single_flight<int> sf;
    const auto k = key_of(2);
    REQUIRE(sf.join(k, [](int) {}));
    sf.complete(k, 1);
    int seen = 0;
    CHECK(sf.join(k, [&](int r) { seen = r; }));  // leads again
    CHECK_FALSE(sf.join(k, [&](int r) { seen = r; }));
    sf.complete(k, 7);
    CHECK(seen == 7);
}

TEST_CASE("single_flight: keys are independent", "[single_flight]") {
    single_flight<int> sf;
    int a = 0;
    int b = 0;
    CHECK(sf.join(key_of(3), [](int) {}));
    CHECK(sf.join(key_of(4), [](int) {}));
    CHECK_FALSE(sf.join(key_of(3), [&](int r) { a = r; }));
    CHECK_FALSE(sf.join(key_of(4), [&](int r) { b = r; }));
    CHECK(sf.in_flight() == 2);
    sf.complete(key_of(4), 40);
    CHECK(a == 0);
    CHECK(b == 40);
    sf.complete(key_of(3), 30);
    CHECK(a == 30);
    CHECK(sf.in_flight() == 0);
}

TEST_CASE("single_flight: callbacks may re-enter join from complete", "[single_flight]") {
    // complete() runs callbacks outside its lock, so a callback that starts a new flight for
    // the same key must not deadlock, and it becomes the new leader.
    single_flight<int> sf;
    const auto k = key_of(5);
    REQUIRE(sf.join(k, [](int) {}));
    bool led_again = false;
    REQUIRE_FALSE(sf.join(k, [&](int) { led_again = sf.join(k, [](int) {}); }));
    sf.complete(k, 1);
    CHECK(led_again);
    CHECK(sf.in_flight() == 1);
}

TEST_CASE("single_flight: 16 concurrent joins elect exactly one leader", "[single_flight]") {
    constexpr int threads = 16;
    for (int round = 0; round < 20; ++round) {
        single_flight<int> sf;
        const auto k = key_of(6);
        std::atomic<int> leaders{0};
        std::atomic<int> delivered{0};
        std::atomic<int> wrong_value{0};
        std::latch start(threads);
        std::latch joined(threads);
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
            pool.emplace_back([&] {
                start.arrive_and_wait();  // all threads race for the key at once
                const bool leader = sf.join(k, [&](const int& r) {
                    if (r != 42) {
                        ++wrong_value;
                    }
                    ++delivered;
                });
                if (leader) {
                    ++leaders;
                }
                joined.count_down();
                if (leader) {
                    joined.wait();  // complete only once every follower is queued
                    sf.complete(k, 42);
                }
            });
        }
        for (auto& th : pool) {
            th.join();
        }
        CHECK(leaders == 1);
        CHECK(delivered == threads - 1);
        CHECK(wrong_value == 0);
        CHECK(sf.in_flight() == 0);
    }
}
