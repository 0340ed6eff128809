#pragma once
// Shared fixtures of the config loader tests (load_test.cpp, load_errors_test.cpp,
// load_auth_test.cpp): a fake environment, YAML loaded from a string, and error dumps.
#include "config/load.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clerk::testing::load_fixtures {

inline config::env_lookup fake_env(std::map<std::string, std::string, std::less<>> vars) {
    return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
        const auto it = vars.find(name);
        if (it == vars.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

inline constexpr std::string_view fixtures_dir = CLERK_CONFIG_FIXTURES;

inline config::env_lookup make_test_env() {
    return fake_env({
        {"MSK", "ak_machine"},
        {"SK", "sk_test_instance"},
        {"EMPTY", ""},
        {"FIXTURES", std::string(fixtures_dir)},
        {"UPSTREAM", "http://10.0.0.1:8000"},
    });
}

inline config::load_result load(std::string_view yaml,
                                const config::env_lookup& env = make_test_env()) {
    return config::load_config_string(yaml, "test.yaml", env);
}

/// 1-based number of the first line of `yaml` that contains `marker`.
inline int line_containing(std::string_view yaml, std::string_view marker) {
    const auto pos = yaml.find(marker);
    REQUIRE(pos != std::string_view::npos);
    return 1 + static_cast<int>(std::count(yaml.begin(), yaml.begin() + pos, '\n'));
}

inline std::string dump(const std::vector<config::config_error>& errors) {
    std::string out;
    for (const auto& e : errors) {
        out += e.to_string() + "\n";
    }
    return out;
}

inline constexpr std::string_view base =
    "upstream:\n"
    "  url: http://127.0.0.1:3000\n"
    "clerk:\n"
    "  machine_secret_key: ak_test\n";

inline std::string with_base(std::string_view extra) {
    return std::string(base) + std::string(extra);
}

}  // namespace clerk::testing::load_fixtures
