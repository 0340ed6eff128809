#include "config/yaml_reader.hpp"

#include "config/duration.hpp"
#include "config/env_expand.hpp"

#include <algorithm>

namespace clerk::config {

namespace {

/// Levenshtein distance, for "did you mean" on unknown keys (a typo must be easy to see).
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

}  // namespace

std::string_view node_kind(const YAML::Node& n) {
    switch (n.Type()) {
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a mapping";
        case YAML::NodeType::Null:
            return "nothing";
        case YAML::NodeType::Scalar:
            return "a scalar";
        case YAML::NodeType::Undefined:
            break;
    }
    return "nothing";
}

int yaml_reader::line_of(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    return m.is_null() ? key_line_ : m.line + 1;
}

void yaml_reader::error(int line, std::string key, std::string problem) {
    failed_.insert(key);
    errors_.push_back(config_error{file_, line, std::move(key), std::move(problem)});
}

bool yaml_reader::visit(const YAML::Node& map, const std::string& path,
                        std::span<const field> fields) {
    if (map.IsNull()) {
        return true;
    }
    if (!map.IsMap()) {
        error(map, path.empty() ? "(top level)" : path,
              "expected a mapping, got " + std::string(node_kind(map)));
        return false;
    }
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
        // Copies, not references: the iterator's operator-> returns a temporary proxy.
        const YAML::Node k = it->first;
        const YAML::Node v = it->second;
        key_line_ = line_of(k);
        if (!k.IsScalar()) {
            error(k, path.empty() ? "(top level)" : path, "keys must be plain strings");
            continue;
        }
        const std::string& name = k.Scalar();
        std::string key = path;
        if (!key.empty()) {
            key += '.';
        }
        key += name;
        const auto f = std::find_if(fields.begin(), fields.end(),
                                    [&](const field& x) { return x.name == name; });
        if (f == fields.end()) {
            std::string problem = "unknown key";
            for (const field& x : fields) {
                if (edit_distance(name, x.name) <= 2) {
                    problem += " (did you mean \"" + std::string(x.name) + "\"?)";
                    break;
                }
            }
            error(key_line_, key, problem);
            continue;
        }
        if (!seen.insert(name).second) {
            error(key_line_, key, "duplicate key");
            continue;
        }
        const int line = key_line_;
        key_lines_.emplace(key, line);
        f->apply(v, key);
        key_line_ = line;
    }
    return true;
}

std::optional<std::string> yaml_reader::scalar_text(const YAML::Node& n, const std::string& key,
                                                    std::string_view expected) {
    if (!n.IsScalar()) {
        error(n, key, "expected " + std::string(expected) + ", got " + std::string(node_kind(n)));
        return std::nullopt;
    }
    const expand_result r = expand_env(n.Scalar(), env_);
    if (!r.syntax_error.empty()) {
        error(n, key, r.syntax_error);
        return std::nullopt;
    }
    if (!r.unset.empty()) {
        for (const std::string& var : r.unset) {
            error(n, key, "environment variable " + var + " is not set");
        }
        return std::nullopt;
    }
    return r.value;
}

std::optional<std::string> yaml_reader::string(const YAML::Node& n, const std::string& key) {
    if (n.IsNull()) {
        return std::string();
    }
    return scalar_text(n, key, "a string");
}

std::optional<bool> yaml_reader::boolean(const YAML::Node& n, const std::string& key) {
    const auto text = scalar_text(n, key, "true or false");
    if (!text) {
        return std::nullopt;
    }
    if (*text == "true") {
        return true;
    }
    if (*text == "false") {
        return false;
    }
    error(n, key, "expected true or false, got \"" + *text + "\"");
    return std::nullopt;
}

std::optional<std::uint64_t> yaml_reader::integer(const YAML::Node& n, const std::string& key,
                                                  std::uint64_t min, std::uint64_t max) {
    const auto text = scalar_text(n, key, "an integer");
    if (!text) {
        return std::nullopt;
    }
    if (!text->empty() && text->front() == '-' && text->size() > 1 &&
        std::all_of(text->begin() + 1, text->end(), [](char c) { return c >= '0' && c <= '9'; })) {
        error(n, key, "must not be negative");
        return std::nullopt;
    }
    std::uint64_t value = 0;
    bool overflow = false;
    for (char c : *text) {
        if (c < '0' || c > '9') {
            error(n, key, "expected an integer, got \"" + *text + "\"");
            return std::nullopt;
        }
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            overflow = true;
            break;
        }
        value = value * 10 + digit;
    }
    if (text->empty()) {
        error(n, key, "expected an integer, got \"\"");
        return std::nullopt;
    }
    if (overflow || value > max) {
        error(n, key, "must be at most " + std::to_string(max));
        return std::nullopt;
    }
    if (value < min) {
        error(n, key, "must be at least " + std::to_string(min));
        return std::nullopt;
    }
    return value;
}

std::optional<millis> yaml_reader::duration(const YAML::Node& n, const std::string& key,
                                            bool allow_zero) {
    const auto text = scalar_text(n, key, "a duration");
    if (!text) {
        return std::nullopt;
    }
    const auto d = parse_duration(*text);
    if (!d) {
        error(n, key,
              "bad duration \"" + *text + "\" (expected an integer and a unit: 250ms, 2s, 5m, 1h)");
        return std::nullopt;
    }
    if (!allow_zero && d->count() == 0) {
        error(n, key, "must be greater than 0");
        return std::nullopt;
    }
    return d;
}

std::optional<std::vector<list_item>> yaml_reader::string_list(const YAML::Node& n,
                                                               const std::string& key) {
    std::vector<list_item> out;
    if (n.IsNull()) {
        return out;
    }
    if (n.IsScalar()) {
        auto v = scalar_text(n, key, "a list of strings");
        if (!v) {
            return std::nullopt;
        }
        out.push_back({std::move(*v), line_of(n)});
        return out;
    }
    if (!n.IsSequence()) {
        error(n, key, "expected a list of strings, got " + std::string(node_kind(n)));
        return std::nullopt;
    }
    bool ok = true;
    for (const YAML::Node& item : n) {
        auto v = scalar_text(item, key, "a string");
        if (!v) {
            ok = false;
            continue;
        }
        out.push_back({std::move(*v), line_of(item)});
    }
    if (!ok) {
        return std::nullopt;
    }
    return out;
}

}  // namespace clerk::config
