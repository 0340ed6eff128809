#include "config/duration.hpp"

#include <cstdint>
#include <limits>

namespace clerk::config {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    // Digits first: no sign, no fraction, no spaces ("1.5s" and "-1s" are refused on purpose:
    // a config value is either exact or an error).
    std::size_t i = 0;
    std::uint64_t n = 0;
    constexpr std::uint64_t max_value = std::numeric_limits<std::int64_t>::max() / 3'600'000;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (n > max_value) {
            return std::nullopt;
        }
        ++i;
    }
    if (i == 0) {
        return std::nullopt;
    }
    const std::string_view unit = text.substr(i);
    std::uint64_t factor = 0;
    if (unit == "ms" || (unit.empty() && n == 0)) {  // a bare "0" is unambiguous
        factor = 1;
    } else if (unit == "s") {
        factor = 1000;
    } else if (unit == "m") {
        factor = 60'000;
    } else if (unit == "h") {
        factor = 3'600'000;
    } else {
        return std::nullopt;
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(n * factor));
}

}  // namespace clerk::config
