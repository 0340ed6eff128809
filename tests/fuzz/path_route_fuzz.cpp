// libFuzzer target: request-target normalization and route matching (docs/reference.md §5 "Path").
//
// Input: "<method>\n<request target>" (without a newline the whole input is the target and the
// method is GET). The target is normalized; an accepted path must be canonical (no empty, "." or
// ".." segment, no backslash, no encoded '/', '\' or NUL) and a fixed point of normalization.
// It is then matched against a fixed route table and the result is compared with a reference
// matcher written here independently of core/route.cpp.
#include "core/path_normalizer.hpp"
#include "core/route.hpp"
#include "fuzz/fuzz_util.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clerk::fuzz::check;
namespace core = clerk::core;

std::vector<core::route> make_table() {
    std::vector<core::route> t;
    auto add = [&t](std::string path, std::vector<std::string> methods, core::auth_mode auth) {
        core::route r = core::make_route(std::move(path));
        r.methods = std::move(methods);
        r.auth = auth;
        t.push_back(std::move(r));
    };
    add("/healthz", {"GET"}, core::auth_mode::none);
    add("/public/*", {}, core::auth_mode::none);
    add("/admin/*", {}, core::auth_mode::required);
    add("/api/v1/*", {"GET", "POST"}, core::auth_mode::required);
    add("/api", {}, core::auth_mode::required);
    add("/*", {"DELETE"}, core::auth_mode::required);
    return t;
}

const std::vector<core::route>& table() {
    static const std::vector<core::route> t = make_table();
    return t;
}

// Reference semantics of docs/reference.md §3 "routes": exact path, or "/x/*" matching "/x" and
// everything below "/x/"; "/*" matches everything; first match whose methods allow `method`.
const core::route* reference_match(std::string_view method, std::string_view path) {
    for (const core::route& r : table()) {
        bool path_ok = false;
        const std::string_view cfg = r.path;
        if (cfg.size() >= 2 && cfg.ends_with("/*")) {
            const std::string_view base = cfg.substr(0, cfg.size() - 2);
            path_ok = path == base || (path.starts_with(base) && path.size() > base.size() &&
                                       path[base.size()] == '/');
        } else {
            path_ok = path == cfg;
        }
        bool method_ok = r.methods.empty();
        for (const auto& m : r.methods) {
            method_ok = method_ok || m == method;
        }
        if (path_ok && method_ok) {
            return &r;
        }
    }
    return nullptr;
}

bool contains(std::string_view s, std::string_view needle) {
    return s.find(needle) != std::string_view::npos;
}

void check_canonical(std::string_view p) {
    check(!p.empty() && p.front() == '/', "path starts with '/'");
    check(!contains(p, "//"), "no '//'");
    check(!contains(p, "/./"), "no '/./'");
    check(!contains(p, "/../"), "no '/../'");
    check(!p.ends_with("/..") && !p.ends_with("/."), "no trailing '/..' or '/.'");
    check(!contains(p, "\\"), "no backslash");
    for (const std::string_view bad : {"%2F", "%2f", "%5C", "%5c", "%00"}) {
        check(!contains(p, bad), "no encoded '/', '\\' or NUL");
    }
    for (const char c : p) {
        const auto u = static_cast<unsigned char>(c);
        check(u > 0x20 && u < 0x7f, "only visible ASCII (everything else is escaped)");
        check(c != '?' && c != '#', "no query or fragment delimiter in the path");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in = clerk::fuzz::as_view(data, size);
    std::string_view method = "GET";
    std::string_view target = in;
    if (const auto nl = in.find('\n'); nl != std::string_view::npos) {
        method = in.substr(0, nl);
        target = in.substr(nl + 1);
    }

    const core::normalized_target n = core::normalize_target(target);
    if (n.status != core::path_status::ok) {
        check(n.path.empty(), "a refused target has no path");
        return 0;
    }
    check_canonical(n.path);

    // The query is passed through byte for byte: everything after the first '?' up to any '#'.
    const std::string_view no_fragment = target.substr(0, target.find('#'));
    const auto q = no_fragment.find('?');
    check(n.has_query == (q != std::string_view::npos), "has_query iff '?' before any '#'");
    if (n.has_query) {
        check(n.query == no_fragment.substr(q + 1), "query is passed through verbatim");
    }

    // Idempotent: what the upstream receives normalizes to itself, so a second proxy (or the
    // upstream's own normalizer) cannot see a different path than the route rules saw.
    const core::normalized_target again = core::normalize_target(n.path);
    check(again.status == core::path_status::ok, "a normalized path is accepted again");
    check(again.path == n.path, "normalization is idempotent");
    check(!again.has_query, "a normalized path has no query");

    // Route matching against an independent reference.
    for (const std::string_view m : std::array<std::string_view, 2>{method, "DELETE"}) {
        const core::route* got = core::match_route(table(), m, n.path);
        check(got == reference_match(m, n.path), "match_route agrees with the reference matcher");
        if (got != nullptr && got->auth == core::auth_mode::none) {
            // An unauthenticated route is only ever reached through its own subtree.
            check(n.path == "/healthz" || n.path == "/public" || n.path.starts_with("/public/"),
                  "auth: none only for /healthz and /public/*");
        }
    }
    return 0;
}
