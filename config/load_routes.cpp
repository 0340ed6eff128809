// The routes section: an ordered list of rules, each a path and methods to match and an auth
// policy (see loader.hpp).
#include "config/loader.hpp"

#include "config/values.hpp"
#include "core/ascii.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clerk::config {

struct loader::route_parts {
    std::optional<std::string> path;
    std::vector<std::string> methods;
    core::auth_mode mode = core::auth_mode::required;
    std::vector<std::string> scopes;
    std::vector<std::string> subjects;
    bool has_scopes = false;
    bool has_subjects = false;
};

void loader::routes(const YAML::Node& n, const std::string& key, std::vector<core::route>& out) {
    if (n.IsNull()) {
        return;
    }
    if (!n.IsSequence()) {
        r_.error(n, key, "expected a list of route rules, got " + std::string(node_kind(n)));
        return;
    }
    std::size_t index = 0;
    for (const YAML::Node& item : n) {
        route(item, key + "[" + std::to_string(index) + "]", out);
        ++index;
    }
}

void loader::route(const YAML::Node& n, const std::string& key, std::vector<core::route>& out) {
    const int line = r_.line_of(n);
    if (!n.IsMap()) {
        r_.error(line, key, "expected a mapping with path, methods, auth, ...");
        return;
    }
    route_parts parts;
    const field fields[] = {
        {"path", [&](const YAML::Node& v, const std::string& k) { route_path(v, k, parts.path); }},
        {"methods",
         [&](const YAML::Node& v, const std::string& k) { route_methods(v, k, parts.methods); }},
        {"auth", [&](const YAML::Node& v, const std::string& k) { route_auth(v, k, parts.mode); }},
        {"require_scopes", word_list(parts.scopes, parts.has_scopes, "scope")},
        {"allow_subjects", word_list(parts.subjects, parts.has_subjects, "subject")},
    };
    r_.visit(n, key, fields);
    add_route(key, line, parts, out);
}

void loader::route_path(const YAML::Node& n, const std::string& key,
                        std::optional<std::string>& out) {
    auto text = r_.string(n, key);
    if (!text) {
        return;
    }
    if (auto problem = route_path_problem(*text); !problem.empty()) {
        r_.error(n, key, "\"" + *text + "\": " + problem);
        return;
    }
    out = std::move(*text);
}

void loader::route_methods(const YAML::Node& n, const std::string& key,
                           std::vector<std::string>& out) {
    auto items = r_.string_list(n, key);
    if (!items) {
        return;
    }
    if (items->empty()) {
        r_.error(n, key, "must list at least one method (omit it to match all methods)");
        return;
    }
    for (const list_item& item : *items) {
        if (!is_http_token(item.value)) {
            r_.error(item.line, key, "\"" + item.value + "\" is not a valid HTTP method");
            continue;
        }
        std::string m = core::to_upper(item.value);
        if (std::find(out.begin(), out.end(), m) == out.end()) {
            out.push_back(std::move(m));
        }
    }
}

void loader::route_auth(const YAML::Node& n, const std::string& key, core::auth_mode& out) {
    auto text = r_.string(n, key);
    if (!text) {
        return;
    }
    if (*text == "none") {
        out = core::auth_mode::none;
    } else if (*text == "required") {
        out = core::auth_mode::required;
    } else {
        r_.error(n, key, "expected none or required, got \"" + *text + "\"");
    }
}

loader::apply_fn loader::word_list(std::vector<std::string>& out, bool& present,
                                   std::string_view what) {
    return [this, &out, &present, what](const YAML::Node& v, const std::string& k) {
        auto items = r_.string_list(v, k);
        if (!items) {
            return;
        }
        for (const list_item& item : *items) {
            if (item.value.empty() || has_control_char(item.value) ||
                item.value.find(' ') != std::string::npos) {
                r_.error(item.line, k,
                         "\"" + item.value + "\" is not a valid " + std::string(what));
                return;
            }
            out.push_back(item.value);
        }
        present = !out.empty();
    };
}

void loader::add_route(const std::string& key, int line, route_parts& parts,
                       std::vector<core::route>& out) {
    const std::string path_key = key + ".path";
    if (!parts.path) {
        if (!r_.failed(path_key)) {
            r_.error(line, path_key, "required");
        }
        return;
    }
    if (parts.mode == core::auth_mode::none && (parts.has_scopes || parts.has_subjects)) {
        // A policy on an unauthenticated route can never be enforced: refuse the contradiction
        // instead of silently dropping the policy.
        const std::string policy_key =
            key + (parts.has_scopes ? ".require_scopes" : ".allow_subjects");
        r_.error(r_.line_for(policy_key, line), policy_key,
                 "not allowed with auth: none (there is no token to check)");
        return;
    }
    core::route r = core::make_route(std::move(*parts.path));
    r.methods = std::move(parts.methods);
    r.auth = parts.mode;
    r.require_scopes = std::move(parts.scopes);
    r.allow_subjects = std::move(parts.subjects);
    r.line = line;
    out.push_back(std::move(r));
}

}  // namespace clerk::config
