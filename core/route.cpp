#include "core/route.hpp"

#include <algorithm>
#include <utility>

namespace clerk::core {

route make_route(std::string path) {
    route r;
    std::string_view p = path;
    if (p.size() >= 2 && p.substr(p.size() - 2) == "/*") {
        // "/api/*" -> "/api"; "/*" -> "" which path_matches treats as "every path".
        r.prefix = true;
        r.match = std::string(p.substr(0, p.size() - 2));
    } else {
        r.match = path;
    }
    r.path = std::move(path);
    return r;
}

bool path_matches(const route& r, std::string_view path) {
    if (!r.prefix) {
        return path == r.match;
    }
    const std::string_view m = r.match;
    if (!path.starts_with(m)) {
        return false;
    }
    // The prefix must end at a segment boundary: "/api" selects "/api" and "/api/...", and
    // never "/apix". With m == "" (rule "/*") every normalized path starts with '/'.
    return path.size() == m.size() || path[m.size()] == '/';
}

const route* match_route(std::span<const route> routes, std::string_view method,
                         std::string_view path) {
    for (const route& r : routes) {
        if (!path_matches(r, path)) {
            continue;
        }
        // A methods filter that excludes this method lets the request fall through to later
        // rules, so "GET /healthz without auth" does not make "POST /healthz" unauthenticated.
        if (!r.methods.empty() &&
            std::find(r.methods.begin(), r.methods.end(), method) == r.methods.end()) {
            continue;
        }
        return &r;
    }
    return nullptr;
}

}  // namespace clerk::core
