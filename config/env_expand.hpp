#pragma once
#include "config/load.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace clerk::config {

struct expand_result {
    std::string value;
    std::vector<std::string> unset;  ///< names of unset variables without a default
    std::string syntax_error;        ///< non-empty on "${" without "}" or a bad name
};

/// Replaces ${VAR} and ${VAR:-default}; an empty value counts as unset. "$$" is a literal "$".
expand_result expand_env(std::string_view text, const env_lookup& env);

}  // namespace clerk::config
