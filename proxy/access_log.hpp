#pragma once
// One access-log line per request (DESIGN.md §8) on the `access` logger.
#include "config/config.hpp"
#include "core/token_type.hpp"
#include "core/verification_cache.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace clerk::proxy {

/// What one request did. Holds no token and no query string by construction: `path` is the
/// normalized path only (a query may carry secrets).
struct access_record {
    std::chrono::system_clock::time_point time;
    std::string request_id;
    std::string method;
    std::string path;
    int status = 0;
    double duration_ms = 0;
    std::uint64_t bytes = 0;  ///< response body bytes sent
    std::optional<core::token_type> token_type;
    std::string subject;
    std::string token_id;
    std::optional<core::cache_result> cache;  ///< nullopt renders "none"
    std::optional<double> upstream_ms;        ///< nullopt when the request was not forwarded
};

/// {"time":…,"request_id":…,"method":…,"path":…,"status":…,"duration_ms":…,"bytes":…,
///  "token_type":…,"subject":…,"token_id":…,"cache":…,"upstream_ms":…} (absent values: null).
std::string format_access_json(const access_record& r);

/// `time request_id method path status duration_ms bytes token_type subject token_id cache
/// upstream_ms` as key=value pairs ("-" for absent values).
std::string format_access_text(const access_record& r);

/// Writes the line on the `access` logger in the configured format when log.access_log is on.
/// Thread safety: any thread.
void log_access(const config::log_config& cfg, const access_record& r);

}  // namespace clerk::proxy
