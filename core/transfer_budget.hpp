#pragma once
// The slow-client bound of a body transfer (limits.min_body_rate): a transfer may spend at most
// grace + bytes / min_rate blocked on the client, so a client that dribbles a request body (or
// reads a response a byte at a time) cannot hold a connection and an upstream connection for
// ever, while a large transfer at any reasonable rate is never cut. Only the time blocked on the
// client counts: waiting for the upstream is not the client's fault. Pure arithmetic; the caller
// measures the time and passes it in.
#include <algorithm>
#include <chrono>
#include <cstdint>

namespace clerk::core {

class transfer_budget {
public:
    using duration = std::chrono::nanoseconds;

    /// `min_rate` bytes per second; 0 disables the rate check (only `per_op` bounds each step).
    transfer_budget(duration grace, std::uint64_t min_rate, duration per_op)
        : grace_(grace), min_rate_(min_rate), per_op_(per_op) {}

    /// The timeout for the next read or write of the client: the per-operation bound, cut to what
    /// is left of the allowance. Zero or less: the client is too slow, stop.
    duration next_timeout() const {
        if (min_rate_ == 0) {
            return per_op_;
        }
        return std::min(per_op_, allowance() - blocked_);
    }

    bool exhausted() const { return next_timeout() <= duration::zero(); }

    /// Records one completed client operation: how long it was blocked and how many bytes moved.
    void account(duration blocked, std::uint64_t bytes) {
        blocked_ += std::max(blocked, duration::zero());
        bytes_ += bytes;
    }

    std::uint64_t bytes() const { return bytes_; }

private:
    duration allowance() const {
        // bytes / rate seconds, saturating: no overflow for any 64-bit byte count.
        constexpr std::uint64_t ns_per_s = 1'000'000'000;
        const std::uint64_t whole = bytes_ / min_rate_;
        const std::uint64_t cap = static_cast<std::uint64_t>(duration::max().count() / 4);
        if (whole >= cap / ns_per_s) {
            return duration(static_cast<duration::rep>(cap));
        }
        const std::uint64_t ns = whole * ns_per_s + (bytes_ % min_rate_) * ns_per_s / min_rate_;
        return grace_ + duration(static_cast<duration::rep>(ns));
    }

    duration grace_;
    std::uint64_t min_rate_;
    duration per_op_;
    duration blocked_{0};
    std::uint64_t bytes_ = 0;
};

}  // namespace clerk::core
