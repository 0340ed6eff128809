#include "core/transfer_budget.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>

using clerk::core::transfer_budget;
using namespace std::chrono_literals;

TEST_CASE("transfer budget: the first operation gets the grace, bounded by the per-op timeout",
          "[transfer_budget]") {
    const transfer_budget b(10s, 1024, 60s);
    CHECK(b.next_timeout() == 10s);
    const transfer_budget short_op(10s, 1024, 2s);
    CHECK(short_op.next_timeout() == 2s);
}

TEST_CASE("transfer budget: each byte buys 1/rate seconds of client time", "[transfer_budget]") {
    transfer_budget b(10s, 1000, 60s);
    b.account(4s, 2000);  // 4 s blocked, 2000 bytes: allowance 12 s, 8 s left
    CHECK(b.next_timeout() == 8s);
    b.account(8s, 0);
    CHECK(b.exhausted());
}

TEST_CASE("transfer budget: a dribbling client runs out, a steady one never does",
          "[transfer_budget]") {
    transfer_budget drip(10s, 1024, 60s);
    int steps = 0;
    while (!drip.exhausted() && steps < 1000) {
        // One byte a second; when the timeout is shorter, it fires and nothing arrives.
        const bool fired = drip.next_timeout() < 1s;
        drip.account(fired ? drip.next_timeout() : transfer_budget::duration(1s), fired ? 0 : 1);
        ++steps;
    }
    CHECK(drip.exhausted());
    CHECK(steps <= 11);

    transfer_budget steady(10s, 1024, 60s);
    for (int i = 0; i < 100000; ++i) {
        steady.account(50ms, 64 * 1024);  // 1.3 MB/s
    }
    CHECK_FALSE(steady.exhausted());
    CHECK(steady.next_timeout() == 60s);
}

TEST_CASE("transfer budget: waiting is only counted when reported", "[transfer_budget]") {
    transfer_budget b(1s, 1024, 60s);
    b.account(-5s, 0);  // a clock step backwards never adds allowance
    CHECK(b.next_timeout() == 1s);
}

TEST_CASE("transfer budget: rate 0 turns the check off", "[transfer_budget]") {
    transfer_budget b(1s, 0, 30s);
    b.account(1h, 0);
    CHECK(b.next_timeout() == 30s);
    CHECK_FALSE(b.exhausted());
}

TEST_CASE("transfer budget: huge byte counts saturate instead of overflowing",
          "[transfer_budget]") {
    transfer_budget b(1s, 1, 60s);
    b.account(1s, UINT64_MAX);
    CHECK(b.next_timeout() == 60s);
}
