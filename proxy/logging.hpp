#pragma once
// Named spdlog loggers (CONTRIBUTING.md §12): main, config, listener, auth, clerk, upstream, admin,
// access, cache, http2; every one follows log.level and log.format. All write to stderr through one
// sink; `log.format: json` gives one JSON object per line
// {"time","level","logger","msg"}, `text` a readable line.
#include "config/config.hpp"

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <string_view>

namespace clerk::proxy {

/// Creates (or reconfigures, on reload) the fixed set of loggers. Call once at start before any
/// logging; calling it again only changes level and format. Thread safety: call from one thread
/// (start-up or the signal coroutine); loggers themselves are thread-safe.
void setup_logging(const config::log_config& cfg);

/// The named logger (created with defaults if setup_logging was not called, e.g. in tests).
std::shared_ptr<spdlog::logger> get_logger(std::string_view name);

/// ISO 8601 UTC with milliseconds ("2025-01-31T12:00:00.123Z").
std::string format_utc_time(std::chrono::system_clock::time_point t);
/// The same appended to `out`, without allocating; the date and time of day are rendered once
/// per second per thread (the access log writes one per request).
void append_utc_time(std::string& out, std::chrono::system_clock::time_point t);

/// Appends `s` to `out` as the inside of a JSON string (quotes not included). Invalid UTF-8 and
/// control bytes are escaped as \u00XX, so a line is always valid JSON-ish ASCII-safe text.
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace clerk::proxy
