#pragma once
// YAML -> validated config. Every problem is collected and reported at once as
// "file:line: key: problem" (line is 1-based; 0 when unknown).
#include "config/config.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clerk::config {

struct config_error {
    std::string file;
    int line = 0;
    std::string key;  ///< dotted path: "upstream.timeout", "routes[1].path"
    std::string problem;
    std::string to_string() const;  ///< "file:line: key: problem"
};

/// Returns the value of an environment variable, or nullopt when unset.
using env_lookup = std::function<std::optional<std::string>(std::string_view)>;
env_lookup process_env();

struct load_result {
    std::shared_ptr<const config> cfg;  ///< set iff errors is empty
    std::vector<config_error> errors;
    bool ok() const { return errors.empty(); }
};

load_result load_config_file(const std::string& path, const env_lookup& env = process_env());
load_result load_config_string(std::string_view yaml, const std::string& file_name,
                               const env_lookup& env = process_env());

}  // namespace clerk::config
