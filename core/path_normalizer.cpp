#include "core/path_normalizer.hpp"

#include <cstddef>
#include <vector>

namespace clerk::core {
namespace {

// Phase 1 decodes one segment at a time. A segment never contains '/' after decoding because an
// encoded slash is refused, so splitting the raw path on '/' first and decoding each segment
// second is equivalent to decoding first: "%2e%2e" becomes a real ".." segment and is removed
// like one, and the route rules see exactly what the upstream will resolve.

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

bool is_control(unsigned char c) {
    return c < 0x20 || c == 0x7F;
}

// pchar minus unreserved and '%' (RFC 3986 §3.3): sub-delims, ':' and '@' are kept raw.
bool is_raw_path_char(unsigned char c) {
    constexpr std::string_view raw_ok = "!$&'()*+,;=:@";
    return c != 0 && raw_ok.find(static_cast<char>(c)) != std::string_view::npos;
}

void append_escape(std::string& out, unsigned char c) {
    constexpr std::string_view hex = "0123456789ABCDEF";
    out.push_back('%');
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 0x0F]);
}

/// Decodes one raw segment (no '/') into `out`. Returns ok or the refusal.
path_status decode_segment(std::string_view raw, std::string& out) {
    for (std::size_t i = 0; i < raw.size(); ++i) {
        const auto c = static_cast<unsigned char>(raw[i]);
        if (c == '%') {
            if (raw.size() - i < 3) {  // '%' needs two more bytes
                return path_status::bad_percent;
            }
            const int hi = hex_value(raw[i + 1]);
            const int lo = hex_value(raw[i + 2]);
            if (hi < 0 || lo < 0) {
                return path_status::bad_percent;
            }
            const auto d = static_cast<unsigned char>(hi * 16 + lo);
            i += 2;
            if (d == '/') {
                return path_status::encoded_slash;
            }
            if (d == '\\') {
                return path_status::encoded_backslash;
            }
            if (is_control(d)) {
                return path_status::nul;
            }
            if (is_unreserved(d)) {
                out.push_back(static_cast<char>(d));
            } else {
                append_escape(out, d);  // reserved and other bytes stay escaped, upper-case hex
            }
        } else if (c == '\\') {
            return path_status::encoded_backslash;
        } else if (is_control(c)) {
            return path_status::nul;
        } else if (is_unreserved(c) || is_raw_path_char(c)) {
            out.push_back(static_cast<char>(c));
        } else {
            // Bytes a path may not hold raw (space, '"', '<', '>', '^', '`', '{', '|', '}',
            // non-ASCII): escape them, so "/é" and "/%C3%A9" normalize to the same path.
            append_escape(out, c);
        }
    }
    return path_status::ok;
}

}  // namespace

void normalize_target(std::string_view target, normalized_target& result) {
    result.status = path_status::ok;
    result.path.clear();
    result.query.clear();
    result.has_query = false;

    // A fragment is never sent by a conforming client; drop it before looking for the query.
    if (const auto hash = target.find('#'); hash != std::string_view::npos) {
        target = target.substr(0, hash);
    }
    if (target.empty() || target.front() != '/') {
        result.status = path_status::not_origin_form;
        return;
    }
    std::string_view raw_path = target;
    if (const auto q = target.find('?'); q != std::string_view::npos) {
        raw_path = target.substr(0, q);
        result.query.assign(target.substr(q + 1));
        result.has_query = true;
    }

    // Phase 2: split on '/', decode each segment, and resolve "", "." and ".." on a stack
    // (RFC 3986 §5.2.4, with "//" runs merged). `segments` holds offsets into `decoded`.
    // Per-thread scratch, reused: the steady state allocates nothing.
    thread_local std::string decoded;
    thread_local std::vector<std::size_t> segments;  // start of each kept segment in `decoded`
    decoded.clear();
    segments.clear();
    bool trailing_slash = false;
    std::size_t pos = 1;  // skip the leading '/'
    while (true) {
        const auto slash = raw_path.find('/', pos);
        const bool last = slash == std::string_view::npos;
        const auto raw = raw_path.substr(pos, last ? std::string_view::npos : slash - pos);

        const std::size_t start = decoded.size();
        if (const auto st = decode_segment(raw, decoded); st != path_status::ok) {
            result.status = st;
            return;
        }
        const std::string_view seg = std::string_view(decoded).substr(start);
        if (seg.empty() || seg == ".") {
            decoded.resize(start);
            trailing_slash = last;
        } else if (seg == "..") {
            decoded.resize(start);
            if (segments.empty()) {
                result.status = path_status::escapes_root;
                return;
            }
            decoded.resize(segments.back());
            segments.pop_back();
            trailing_slash = last;
        } else {
            segments.push_back(start);
            decoded.push_back('/');  // separator after each kept segment, trimmed below
            trailing_slash = false;
        }
        if (last) {
            break;
        }
        pos = slash + 1;
    }

    // Phase 3: render. `decoded` is "a/b/" for kept segments a, b.
    result.path.reserve(decoded.size() + 1);
    result.path.push_back('/');
    result.path.append(decoded);
    if (!segments.empty() && !trailing_slash) {
        result.path.pop_back();
    }
}

normalized_target normalize_target(std::string_view target) {
    normalized_target result;
    normalize_target(target, result);
    return result;
}

std::string_view to_string(path_status s) {
    switch (s) {
        case path_status::ok:
            return "ok";
        case path_status::not_origin_form:
            return "not_origin_form";
        case path_status::bad_percent:
            return "bad_percent";
        case path_status::encoded_slash:
            return "encoded_slash";
        case path_status::encoded_backslash:
            return "encoded_backslash";
        case path_status::nul:
            return "nul";
        case path_status::escapes_root:
            return "escapes_root";
    }
    return "unknown";
}

}  // namespace clerk::core
