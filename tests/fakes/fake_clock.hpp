#pragma once
// A clock the test moves by hand.
#include "core/clock.hpp"

#include <atomic>

namespace clerk::testing {

class fake_clock final : public core::clock {
public:
    explicit fake_clock(core::sys_time start = core::sys_time{std::chrono::hours(24 * 365 * 56)})
        : now_(start.time_since_epoch().count()) {}
    core::sys_time now() const override {
        return core::sys_time{core::sys_time::duration{now_.load()}};
    }
    void advance(std::chrono::milliseconds d) {
        now_ += std::chrono::duration_cast<core::sys_time::duration>(d).count();
    }

private:
    std::atomic<core::sys_time::rep> now_;
};

}  // namespace clerk::testing
