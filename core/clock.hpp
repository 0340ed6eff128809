#pragma once
// Time is injected: core never reads a clock directly (tests use tests/fakes/fake_clock.hpp).
#include <chrono>

namespace clerk::core {

using sys_time = std::chrono::system_clock::time_point;
using millis = std::chrono::milliseconds;

/// Source of wall-clock time. Thread safety: implementations must be safe to call from any thread.
class clock {
public:
    virtual ~clock() = default;
    virtual sys_time now() const = 0;
};

/// The real clock (std::chrono::system_clock).
class system_clock final : public clock {
public:
    sys_time now() const override { return std::chrono::system_clock::now(); }
    static const system_clock& instance() {
        static const system_clock c;
        return c;
    }
};

}  // namespace clerk::core
