#include "config/duration.hpp"

#include <catch2/catch.hpp>

#include <string_view>

using clerk::config::parse_duration;
using std::chrono::milliseconds;

namespace {

struct good_case {
    std::string_view text;
    long long ms;
};

constexpr good_case good_cases[] = {
    {"250ms", 250}, {"2s", 2000},   {"5m", 300000}, {"1h", 3600000},   {"0s", 0},        {"0", 0},
    {"0ms", 0},     {"60s", 60000}, {"007s", 7000}, {"24h", 86400000}, {"1000ms", 1000},
};

constexpr std::string_view bad_cases[] = {
    "",     "s",   "ms",   "5",   "10",  "-1s",   "+1s",
    "1.5s", "1 s", " 1s",  "1s ", "1S",  "1sec",  "1d",
    "1us",  "1ns", "1m1s", "1hh", "abc", "1e3ms", "99999999999999999999h",
};

}  // namespace

TEST_CASE("parse_duration accepts an integer and one unit", "[config][duration]") {
    for (const auto& c : good_cases) {
        INFO("text: " << c.text);
        const auto d = parse_duration(c.text);
        REQUIRE(d.has_value());
        CHECK(d->count() == c.ms);
    }
}

TEST_CASE("parse_duration refuses anything else", "[config][duration]") {
    for (std::string_view text : bad_cases) {
        INFO("text: \"" << text << "\"");
        CHECK_FALSE(parse_duration(text).has_value());
    }
}

TEST_CASE("parse_duration handles large values without overflow", "[config][duration]") {
    CHECK(parse_duration("2562047h").has_value());  // ~292 years: fits in int64 milliseconds
    CHECK_FALSE(parse_duration("9223372036854775807h").has_value());
    CHECK(parse_duration("9223372036854775807ms") == std::nullopt);  // above the guard
}
