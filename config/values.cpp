#include "config/values.hpp"

#include "core/ascii.hpp"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <sys/un.h>
#include <cctype>
#include <filesystem>
#include <fstream>

namespace clerk::config {

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

using core::istarts_with;
using core::to_lower;

/// Decimal port: digits only, at most 65535.
std::optional<std::uint16_t> parse_port(std::string_view s) {
    if (s.empty() || s.size() > 5) {
        return std::nullopt;
    }
    unsigned value = 0;
    for (char c : s) {
        if (!is_digit(c)) {
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

/// A DNS name or IPv4 literal (letters, digits, '-', '.', '_').
bool is_reg_name(std::string_view host) {
    if (host.empty()) {
        return false;
    }
    for (char c : host) {
        if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_') {
            return false;
        }
    }
    return true;
}

/// The inside of "[...]": hex digits, ':' and '.' (for "::ffff:1.2.3.4"), at least one ':'.
bool is_ipv6_literal(std::string_view host) {
    if (host.find(':') == std::string_view::npos) {
        return false;
    }
    for (char c : host) {
        if (!is_hex(c) && c != ':' && c != '.') {
            return false;
        }
    }
    return true;
}

struct authority {
    std::string host;  // without brackets, lower-case
    bool ipv6 = false;
    std::optional<std::uint16_t> port;
};

/// host[:port] of a URL. Returns the problem, "" when fine.
std::string parse_authority(std::string_view text, authority& out) {
    if (text.find('@') != std::string_view::npos) {
        return "credentials in the URL are not supported";
    }
    std::string_view host = text;
    std::string_view port;
    bool has_port = false;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            return "unterminated '[' in host";
        }
        host = text.substr(1, close - 1);
        const std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return "unexpected text after ']'";
            }
            port = rest.substr(1);
            has_port = true;
        }
        if (!is_ipv6_literal(host)) {
            return "bad IPv6 address \"" + std::string(host) + "\"";
        }
        out.ipv6 = true;
    } else {
        if (const auto colon = text.find(':'); colon != std::string_view::npos) {
            host = text.substr(0, colon);
            port = text.substr(colon + 1);
            has_port = true;
        }
        if (host.empty()) {
            return "missing host";
        }
        if (!is_reg_name(host)) {
            return "bad host \"" + std::string(host) + "\"";
        }
    }
    if (has_port) {
        const auto p = parse_port(port);
        if (!p || *p == 0) {
            return "bad port \"" + std::string(port) + "\" (1-65535)";
        }
        out.port = p;
    }
    out.host = to_lower(host);
    return "";
}

struct http_url {
    bool https = false;
    authority auth;
    std::string base_path;  // "" or "/v1", no trailing '/'
};

std::string parse_http_url(std::string_view text, http_url& out) {
    std::string_view rest;
    if (istarts_with(text, "https://")) {
        out.https = true;
        rest = text.substr(8);
    } else if (istarts_with(text, "http://")) {
        rest = text.substr(7);
    } else {
        return "must start with http:// or https://";
    }
    if (rest.find_first_of("?#") != std::string_view::npos) {
        return "must not have a query or fragment";
    }
    for (char c : rest) {
        if (std::isspace(static_cast<unsigned char>(c)) ||
            std::iscntrl(static_cast<unsigned char>(c))) {
            return "must not contain spaces or control characters";
        }
    }
    const auto slash = rest.find('/');
    const std::string_view auth_text = rest.substr(0, slash);
    if (auto problem = parse_authority(auth_text, out.auth); !problem.empty()) {
        return problem;
    }
    if (slash != std::string_view::npos) {
        std::string_view path = rest.substr(slash);
        while (!path.empty() && path.back() == '/') {
            path.remove_suffix(1);
        }
        out.base_path = std::string(path);
    }
    return "";
}

std::string bracketed(const authority& a) {
    return a.ipv6 ? "[" + a.host + "]" : a.host;
}

bool is_pchar_or_slash(char c) {
    // RFC 3986 pchar minus '%' (checked separately) plus '/'.
    static constexpr std::string_view extra = "-._~!$&'()*+,;=:@/";
    return is_alpha(c) || is_digit(c) || extra.find(c) != std::string_view::npos;
}

}  // namespace

bool is_http_token(std::string_view s) {
    static constexpr std::string_view tchar_extra = "!#$%&'*+-.^_`|~";
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        if (!is_alpha(c) && !is_digit(c) && tchar_extra.find(c) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

std::optional<listen_address> parse_listen_address(std::string_view text, std::string& problem) {
    listen_address out;
    out.text = std::string(text);
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            problem = "expected \"[ipv6]:port\"";
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        if (!is_ipv6_literal(host)) {
            problem = "bad IPv6 address \"" + std::string(host) + "\"";
            return std::nullopt;
        }
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            problem = "expected \"host:port\"";
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            problem = "an IPv6 address needs brackets, e.g. \"[::]:8080\"";
            return std::nullopt;
        }
        if (!is_reg_name(host)) {
            problem = host.empty() ? "missing host (use \"0.0.0.0:PORT\" for all interfaces)"
                                   : "bad host \"" + std::string(host) + "\"";
            return std::nullopt;
        }
    }
    const auto p = parse_port(port);
    if (!p) {
        problem = "bad port \"" + std::string(port) + "\" (0-65535)";
        return std::nullopt;
    }
    out.host = std::string(host);
    out.port = *p;
    return out;
}

std::string parse_upstream_url(std::string_view text, upstream_config& out) {
    out.url = std::string(text);
    if (istarts_with(text, "unix:")) {
        const std::string_view path = text.substr(5);
        if (path.size() < 2 || path.front() != '/') {
            return "expected unix:/absolute/path.sock";
        }
        if (path.find('\0') != std::string_view::npos) {
            return "socket path contains NUL";
        }
        if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
            return "socket path is longer than " +
                   std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes";
        }
        out.scheme = upstream_scheme::unix_socket;
        out.unix_path = std::string(path);
        out.host.clear();
        out.port = 0;
        out.host_header = "localhost";
        out.base_path.clear();
        return "";
    }
    http_url u;
    if (auto problem = parse_http_url(text, u); !problem.empty()) {
        return problem + " (expected http://host:port, https://host:port or unix:/path.sock)";
    }
    const std::uint16_t default_port = u.https ? 443 : 80;
    out.scheme = u.https ? upstream_scheme::https : upstream_scheme::http;
    out.host = u.auth.host;
    out.port = u.auth.port.value_or(default_port);
    out.host_header = out.port == default_port ? bracketed(u.auth)
                                               : bracketed(u.auth) + ":" + std::to_string(out.port);
    out.base_path = u.base_path;
    out.unix_path.clear();
    return "";
}

std::string parse_api_url(std::string_view text, clerk_config& out) {
    http_url u;
    if (auto problem = parse_http_url(text, u); !problem.empty()) {
        return problem;
    }
    out.api_url_is_https = u.https;
    out.api_host = u.auth.host;
    out.api_port = u.auth.port.value_or(u.https ? 443 : 80);
    out.api_base_path = u.base_path;
    // Appended piece by piece: `"https://" + std::string&&` is an insert at position 0, which
    // GCC 12 at -O3 (Release) misreads as an overlapping copy (-Wrestrict, GCC bug 105329).
    std::string url = u.https ? "https://" : "http://";
    url += bracketed(u.auth);
    if (u.auth.port) {
        url += ':';
        url += std::to_string(*u.auth.port);
    }
    url += u.base_path;
    out.api_url = std::move(url);
    return "";
}

bool is_loopback_host(std::string_view host) {
    const std::string h = to_lower(host);
    if (h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1") {
        return true;
    }
    if (h.size() > 10 && h.ends_with(".localhost")) {
        return true;
    }
    if (!h.starts_with("127.")) {
        return false;
    }
    // 127.a.b.c with numeric octets: a name like "127.evil.com" is not loopback.
    int dots = 0;
    for (char c : h) {
        if (c == '.') {
            ++dots;
        } else if (!is_digit(c)) {
            return false;
        }
    }
    return dots == 3;
}

std::string route_path_problem(std::string_view path) {
    if (path.empty() || path.front() != '/') {
        return "must start with '/'";
    }
    if (const auto star = path.find('*'); star != std::string_view::npos) {
        if (star != path.size() - 1 || path[star - 1] != '/') {
            return "'*' is only allowed as a final \"/*\" (prefix rule)";
        }
    }
    for (std::size_t i = 0; i < path.size(); ++i) {
        const char c = path[i];
        if (c == '%') {
            if (i + 2 >= path.size() || !is_hex(path[i + 1]) || !is_hex(path[i + 2])) {
                return "bad percent-escape";
            }
        } else if (!is_pchar_or_slash(c)) {
            return c == '?' || c == '#' ? "must not contain a query or fragment"
                                        : "contains a character that is not allowed in a path";
        }
    }
    // The rules match normalized paths (docs/reference.md §5): a rule that is not itself normalized
    // could never match, which silently disables it.
    std::string_view rest = path.substr(1);
    while (true) {
        const auto slash = rest.find('/');
        const std::string_view segment = rest.substr(0, slash);
        if (segment == "." || segment == "..") {
            return "must not contain \".\" or \"..\" segments";
        }
        if (segment.empty() && slash != std::string_view::npos) {
            return "must not contain \"//\"";
        }
        if (slash == std::string_view::npos) {
            break;
        }
        rest = rest.substr(slash + 1);
    }
    return "";
}

std::string file_problem(const std::string& path) {
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(st)) {
        return "file \"" + path + "\" does not exist";
    }
    if (!std::filesystem::is_regular_file(st)) {
        return "\"" + path + "\" is not a regular file";
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return "file \"" + path + "\" is not readable";
    }
    return "";
}

std::string ca_file_problem(const std::string& path) {
    if (auto problem = file_problem(path); !problem.empty()) {
        return problem;
    }
    X509_STORE* store = X509_STORE_new();
    if (store == nullptr) {
        return "cannot check \"" + path + "\": out of memory";
    }
    bool has_certificate = false;
    if (X509_STORE_load_file(store, path.c_str()) == 1) {
        // A file of CRLs only loads too, and then trusts nothing.
        STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
        for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
            if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objects, i)) == X509_LU_X509) {
                has_certificate = true;
                break;
            }
        }
    }
    X509_STORE_free(store);
    ERR_clear_error();
    if (!has_certificate) {
        return "\"" + path + "\" holds no PEM certificate (a CA bundle is expected)";
    }
    return "";
}

bool has_control_char(std::string_view s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            return true;
        }
    }
    return false;
}

}  // namespace clerk::config
