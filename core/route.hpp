#pragma once
// Route rules (docs/reference.md §3 "routes") and matching. First match wins.
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace clerk::core {

enum class auth_mode { required, none };

struct route {
    std::string path;                  ///< as configured ("/api/*" or "/healthz")
    std::string match;                 ///< "/api" for a prefix rule, the exact path otherwise
    bool prefix = false;               ///< configured path ended with "/*"
    std::vector<std::string> methods;  ///< upper-case; empty = all methods
    auth_mode auth = auth_mode::required;
    std::vector<std::string> require_scopes;
    std::vector<std::string> allow_subjects;  ///< empty = any subject
    int line = 0;                             ///< config line, for logs
};

/// Builds a route from its configured path: "/api/*" -> prefix "/api"; "/*" -> everything.
route make_route(std::string path);

/// True when `path` (normalized) is selected by `r` ignoring methods. A prefix rule "/api/*"
/// matches "/api" itself and anything below "/api/", never "/apix".
bool path_matches(const route& r, std::string_view path);

/// First rule whose path and method match; nullptr means "no rule": auth required, no policy.
/// `method` is compared case-sensitively (HTTP methods are case-sensitive).
const route* match_route(std::span<const route> routes, std::string_view method,
                         std::string_view path);

}  // namespace clerk::core
