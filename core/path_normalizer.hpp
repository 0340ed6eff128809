#pragma once
// Request-target handling (docs/reference.md §5 "Path"). Pure: no I/O.
#include <string>
#include <string_view>

namespace clerk::core {

enum class path_status {
    ok,
    not_origin_form,    ///< target does not start with '/' (absolute-form, authority-form, '*')
    bad_percent,        ///< '%' not followed by two hex digits
    encoded_slash,      ///< %2F / %2f
    encoded_backslash,  ///< %5C / %5c, or a raw '\'
    nul,                ///< %00 or a raw NUL / control character
    escapes_root,       ///< ".." above "/"
};

struct normalized_target {
    path_status status = path_status::ok;
    std::string path;   ///< normalized path, always starts with '/' when ok
    std::string query;  ///< the original query string without '?', byte for byte ("" if none)
    bool has_query = false;
};

/// Splits an origin-form request target at the first '?' (and drops any '#fragment'),
/// then normalizes the path: percent-decodes unreserved characters (ALPHA DIGIT - . _ ~),
/// normalizes the hex case of the remaining escapes to upper case, refuses encoded '/', '\',
/// NUL and control characters, merges "//" runs, removes "." and ".." segments
/// (RFC 3986 §5.2.4) and refuses a ".." that would climb above the root.
/// A trailing '/' is kept ("/a/" stays "/a/"; "/a/." becomes "/a/").
normalized_target normalize_target(std::string_view target);
/// The same into `out`, reusing its strings' storage (the data path keeps one per connection).
void normalize_target(std::string_view target, normalized_target& out);

/// Short machine-readable reason for a refusal ("escapes_root", ...), for logs and bodies.
std::string_view to_string(path_status s);

}  // namespace clerk::core
