#pragma once
// Typed, error-collecting access to a parsed YAML tree. Every getter reports its own problem
// (with key path and 1-based line) and returns nullopt, so that the loader continues and
// reports every mistake of a file at once. Internal to config/.
#include "config/load.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clerk::config {

/// One entry of a list of strings, with its line (for per-item errors).
struct list_item {
    std::string value;
    int line = 0;
};

/// Thread safety: none; one reader per load. Lifetime: `env` and `errors` outlive the reader.
class yaml_reader {
public:
    yaml_reader(std::string file, const env_lookup& env, std::vector<config_error>& errors)
        : file_(std::move(file)), env_(env), errors_(errors) {}

    /// One allowed key of a mapping and what to do with its value.
    struct field {
        std::string_view name;
        std::function<void(const YAML::Node& value, const std::string& key)> apply;
    };

    /// Visits a mapping: each entry goes to its field; unknown (with a suggestion), duplicate
    /// and non-string keys are reported. A null node counts as an empty mapping. Returns false
    /// (after reporting) when the node is not a mapping.
    bool visit(const YAML::Node& map, const std::string& path, std::span<const field> fields);

    /// Scalars: env-expanded first, then checked. Null reads as "" for strings.
    std::optional<std::string> string(const YAML::Node& n, const std::string& key);
    std::optional<bool> boolean(const YAML::Node& n, const std::string& key);
    std::optional<std::uint64_t> integer(const YAML::Node& n, const std::string& key,
                                         std::uint64_t min, std::uint64_t max);
    std::optional<millis> duration(const YAML::Node& n, const std::string& key, bool allow_zero);
    /// A sequence of scalars; a single scalar counts as a list of one.
    std::optional<std::vector<list_item>> string_list(const YAML::Node& n, const std::string& key);

    /// 1-based line of a node; the line of the key being visited when the node has no mark.
    int line_of(const YAML::Node& n) const;

    void error(int line, std::string key, std::string problem);
    void error(const YAML::Node& at, std::string key, std::string problem) {
        error(line_of(at), std::move(key), std::move(problem));
    }
    /// 1-based line of the key whose value is being visited.
    int key_line() const { return key_line_; }
    /// 1-based line where `key` ("upstream", "tls.cert_file") was written, or `fallback`.
    int line_for(const std::string& key, int fallback) const {
        const auto it = key_lines_.find(key);
        return it == key_lines_.end() ? fallback : it->second;
    }
    /// True when an error was reported for `key` (so that "required" checks stay quiet).
    bool failed(const std::string& key) const { return failed_.contains(key); }

private:
    std::optional<std::string> scalar_text(const YAML::Node& n, const std::string& key,
                                           std::string_view expected);

    std::string file_;
    const env_lookup& env_;
    std::vector<config_error>& errors_;
    std::set<std::string> failed_;
    std::map<std::string, int> key_lines_;
    int key_line_ = 0;
};

/// "sequence", "mapping", ... for messages.
std::string_view node_kind(const YAML::Node& n);

}  // namespace clerk::config
