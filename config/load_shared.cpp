// cache.shared (docs/reference.md §15): the Redis URL and the shared cache's settings.
#include "config/loader.hpp"
#include "config/values.hpp"

#include <charconv>

namespace clerk::config {
namespace {

bool digits_to_int(std::string_view s, long long max, long long& out) {
    if (s.empty() || s.size() > 9) {
        return false;
    }
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size() && out >= 0 && out <= max;
}

/// Percent-decoding of the userinfo (a password may need %40 for '@' and so on).
bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size()) {
            return false;
        }
        unsigned v = 0;
        const auto r = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
        if (r.ec != std::errc() || r.ptr != in.data() + i + 3) {
            return false;
        }
        out += static_cast<char>(v);
        i += 2;
    }
    return true;
}

std::string parse_userinfo(std::string_view info, shared_cache_config& out) {
    const auto colon = info.find(':');
    if (colon == std::string_view::npos) {
        return "the part before '@' must be [username]:password";
    }
    if (!percent_decode(info.substr(0, colon), out.username) ||
        !percent_decode(info.substr(colon + 1), out.password)) {
        return "bad percent-escape in the username or password";
    }
    if (has_control_char(out.username) || has_control_char(out.password)) {
        return "the username or password holds a control character";
    }
    return {};
}

}  // namespace

std::string parse_redis_url(std::string_view text, shared_cache_config& out) {
    out.username.clear();
    out.password.clear();
    out.db = 0;
    std::string_view rest;
    if (text.starts_with("redis://")) {
        out.transport = redis_transport::tcp;
        rest = text.substr(8);
    } else if (text.starts_with("rediss://")) {
        out.transport = redis_transport::tls;
        rest = text.substr(9);
    } else if (text.starts_with("unix://")) {
        out.transport = redis_transport::unix_socket;
        rest = text.substr(7);
    } else {
        return "expected redis://host:port, rediss://host:port or unix:///path.sock";
    }
    if (out.transport == redis_transport::unix_socket) {
        if (!rest.starts_with("/")) {
            const auto at = rest.find("@/");
            if (at == std::string_view::npos) {
                return "expected unix://[[username]:password@]/path.sock[?db=N]";
            }
            if (auto p = parse_userinfo(rest.substr(0, at), out); !p.empty()) {
                return p;
            }
            rest = rest.substr(at + 1);
        }
        const auto q = rest.find('?');
        out.path = std::string(rest.substr(0, q));
        if (q != std::string_view::npos) {
            const auto query = rest.substr(q + 1);
            long long db = 0;
            if (!query.starts_with("db=") || !digits_to_int(query.substr(3), 1'000'000, db)) {
                return "the only query parameter is db=N";
            }
            out.db = static_cast<int>(db);
        }
        if (out.path.size() < 2 || has_control_char(out.path)) {
            return "expected a socket path after unix://";
        }
        return {};
    }
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        if (auto p = parse_userinfo(authority.substr(0, at), out); !p.empty()) {
            return p;
        }
        authority = authority.substr(at + 1);
    }
    std::string_view host = authority;
    std::string_view port;
    if (authority.starts_with("[")) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return "unclosed '[' in the host";
        }
        host = authority.substr(1, close - 1);
        const auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(":")) {
                return "expected :port after the IPv6 address";
            }
            port = after.substr(1);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty() || has_control_char(host)) {
        return "missing host";
    }
    out.host = std::string(host);
    out.port = 6379;
    if (!port.empty()) {
        long long p = 0;
        if (!digits_to_int(port, 65535, p) || p == 0) {
            return "bad port";
        }
        out.port = static_cast<std::uint16_t>(p);
    }
    if (slash != std::string_view::npos) {
        const auto db_text = rest.substr(slash + 1);
        long long db = 0;
        if (!db_text.empty() && !digits_to_int(db_text, 1'000'000, db)) {
            return "the path must be a database number (/0, /1, ...)";
        }
        out.db = static_cast<int>(db);
    }
    return {};
}

void loader::shared_cache(const YAML::Node& n, const std::string& key, shared_cache_config& out) {
    const field fields[] = {
        {"redis_url",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text || text->empty()) {
                 return;  // "" (e.g. ${REDIS_URL:-}) leaves the shared cache off
             }
             if (auto problem = parse_redis_url(*text, out); !problem.empty()) {
                 r_.error(v, k, problem);  // never the URL: it may hold a password
                 return;
             }
             out.redis_url = std::move(*text);
         }},
        {"key_prefix",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text) {
                 return;
             }
             if (text->size() > 128 || has_control_char(*text)) {
                 r_.error(v, k, "at most 128 characters, no control characters");
                 return;
             }
             out.key_prefix = std::move(*text);
         }},
        {"timeout", to_duration(out.timeout, false)},
        {"ca_file", to_ca_file(out.ca_file)},
    };
    r_.visit(n, key, fields);
}

}  // namespace clerk::config
