#pragma once
// One access-log line per request (docs/reference.md §8), in the format of the `access` logger.
//
// The hot path never blocks on the log: each thread appends its lines to its own buffer (no
// lock, no allocation once the buffer has grown), which is written to stderr when it holds
// 16 KiB, when its event loop's 100 ms flush timer fires, and when the thread ends. Threads
// that are not event loops write each line at once. A write is cut at line boundaries into
// pieces of at most 4 KiB (PIPE_BUF), so lines from several threads never interleave.
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
/// The views must stay valid until log_access() returns (nothing is kept after it).
struct access_record {
    std::chrono::system_clock::time_point time;
    std::string_view request_id;
    std::string_view method;
    std::string_view path;
    int status = 0;
    double duration_ms = 0;
    std::uint64_t bytes = 0;  ///< response body bytes sent
    std::optional<core::token_type> token_type;
    std::string_view subject;
    std::string_view token_id;
    std::optional<core::cache_result> cache;  ///< nullopt renders "none"
    std::optional<double> upstream_ms;        ///< nullopt when the request was not forwarded
    /// A WebSocket tunnel's bytes client -> upstream (`bytes` is upstream -> client); the field
    /// is written only for tunnels.
    std::optional<std::uint64_t> bytes_in;
    /// "HTTP/1.0", "HTTP/1.1" or "HTTP/2" (downstream); "" renders null.
    std::string_view protocol;
};

/// {"time":…,"request_id":…,"method":…,"path":…,"status":…,"duration_ms":…,"bytes":…,
///  "token_type":…,"subject":…,"token_id":…,"cache":…,"upstream_ms":…,"protocol":…} (absent
///  values: null).
std::string format_access_json(const access_record& r);

/// `time request_id method path status duration_ms bytes token_type subject token_id cache
/// upstream_ms protocol` as key=value pairs ("-" for absent values).
std::string format_access_text(const access_record& r);

/// Appends the line (JSON as format_access_json; text as the text logger renders it:
/// "<time> info [access] <pairs>") to this thread's buffer when log.access_log is on.
/// Thread safety: any thread (the buffer is per thread).
void log_access(const config::log_config& cfg, const access_record& r);

/// Makes this thread an event loop for the access log: lines are batched until
/// flush_access_log() or 16 KiB. Without it every line is written at once.
void access_log_batching(bool on);

/// Writes this thread's buffered lines to stderr.
void flush_access_log();

}  // namespace clerk::proxy
