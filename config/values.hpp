#pragma once
// Parsers and checks for single config values: listen addresses, URLs, HTTP tokens, route paths,
// files. Pure functions; each returns a problem text ("" when the value is fine) so that the
// loader can attach it to a key and a line. Internal to config/.
#include "config/config.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace clerk::config {

/// RFC 9110 §5.6.2 token (header names, methods): one or more tchar.
bool is_http_token(std::string_view s);

/// "host:port", "[::1]:8080", "[::]:0". Port 0..65535; brackets are removed from `host`.
std::optional<listen_address> parse_listen_address(std::string_view text, std::string& problem);

/// http://host[:port][/base], https://..., unix:/path/to.sock. Fills the URL-derived fields of
/// `out` (scheme, host, port, host_header, base_path, unix_path, url).
std::string parse_upstream_url(std::string_view text, upstream_config& out);

/// http(s)://host[:port][/base] for clerk.api_url. Fills api_url (no trailing '/'),
/// api_url_is_https, api_host, api_port, api_base_path.
std::string parse_api_url(std::string_view text, clerk_config& out);

/// redis://[[user]:password@]host[:port][/db], rediss://… (TLS), unix://[[user]:password@]/path
/// [?db=N]. Fills the URL-derived fields of `out` (not redis_url). The problem text never
/// contains the URL (it may hold a password).
std::string parse_redis_url(std::string_view text, shared_cache_config& out);

/// "localhost", "*.localhost", 127.0.0.0/8 and ::1.
bool is_loopback_host(std::string_view host);

/// "/exact" or "/prefix/*" (also "/*"): '*' only as the final segment, no "//", "." or ".."
/// segments, no query or fragment, only URI path characters.
std::string route_path_problem(std::string_view path);

/// "" when `path` names a readable regular file (symlinks followed), else the reason.
std::string file_problem(const std::string& path);
/// file_problem, else "" when the file holds a CA bundle OpenSSL loads (at least one PEM
/// certificate: what the TLS clients will load at start), else the problem. One rule for
/// upstream.ca_file, clerk.ca_file and cache.shared.ca_file: a bad bundle fails --check,
/// start and reload rather than every connection later.
std::string ca_file_problem(const std::string& path);

/// True when `s` has a control character (CR, LF, NUL, ...): such values may not reach a header.
bool has_control_char(std::string_view s);

}  // namespace clerk::config
