#pragma once
#include <chrono>
#include <optional>
#include <string_view>

namespace clerk::config {

/// "250ms", "2s", "5m", "1h" (also "0s", "0"): a non-negative integer and one unit.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace clerk::config
