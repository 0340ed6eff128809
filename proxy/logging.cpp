#include "proxy/logging.hpp"

#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace clerk::proxy {
namespace {

constexpr std::array<std::string_view, 10> logger_names{
    "main", "config", "listener", "auth", "clerk", "upstream", "admin", "access", "cache", "http2"};

std::string_view level_name(spdlog::level::level_enum l) {
    switch (l) {
        case spdlog::level::trace:
            return "trace";
        case spdlog::level::debug:
            return "debug";
        case spdlog::level::info:
            return "info";
        case spdlog::level::warn:
            return "warn";
        case spdlog::level::err:
            return "error";
        case spdlog::level::critical:
            return "critical";
        default:
            return "off";
    }
}

/// {"time":"…","level":"info","logger":"listener","msg":"…"}. The access logger's payload is
/// already a complete JSON object (access_log.cpp), so it is written through unchanged.
class json_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string line;
        const std::string_view payload(msg.payload.data(), msg.payload.size());
        if (msg.logger_name == "access" && !payload.empty() && payload.front() == '{') {
            line.assign(payload);
        } else {
            line.reserve(payload.size() + 96);
            line += R"({"time":")";
            line += format_utc_time(msg.time);
            line += R"(","level":")";
            line += level_name(msg.level);
            line += R"(","logger":")";
            append_json_escaped(line,
                                std::string_view(msg.logger_name.data(), msg.logger_name.size()));
            line += R"(","msg":")";
            append_json_escaped(line, payload);
            line += "\"}";
        }
        line.push_back('\n');
        dest.append(line.data(), line.data() + line.size());
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<json_formatter>();
    }
};

/// "2025-01-31T12:00:00.123Z info [listener] msg"
class text_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string line = format_utc_time(msg.time);
        line += ' ';
        line += level_name(msg.level);
        line += " [";
        line.append(msg.logger_name.data(), msg.logger_name.size());
        line += "] ";
        line.append(msg.payload.data(), msg.payload.size());
        line.push_back('\n');
        dest.append(line.data(), line.data() + line.size());
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<text_formatter>();
    }
};

spdlog::level::level_enum to_spdlog(config::log_level l) {
    switch (l) {
        case config::log_level::trace:
            return spdlog::level::trace;
        case config::log_level::debug:
            return spdlog::level::debug;
        case config::log_level::info:
            return spdlog::level::info;
        case config::log_level::warn:
            return spdlog::level::warn;
        case config::log_level::error:
            return spdlog::level::err;
    }
    return spdlog::level::info;
}

std::mutex setup_mu;

std::shared_ptr<spdlog::sinks::stderr_sink_mt> shared_sink() {
    static auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    return sink;
}

/// The last log settings applied (setup_logging); until then JSON at info.
config::log_config current_settings;

void configure(spdlog::logger& l, const config::log_config& cfg) {
    if (cfg.format == config::log_format::json) {
        l.set_formatter(std::make_unique<json_formatter>());
    } else {
        l.set_formatter(std::make_unique<text_formatter>());
    }
    l.set_level(to_spdlog(cfg.level));
    // Access lines are emitted at info; they are switched by log.access_log, not the level.
    if (l.name() == "access") {
        l.set_level(spdlog::level::info);
    }
    l.flush_on(spdlog::level::trace);
}

/// Called with setup_mu held. A logger first asked for after setup_logging (e.g. by a module
/// started later) gets the current settings too.
std::shared_ptr<spdlog::logger> make_or_get(std::string_view name) {
    const std::string n(name);
    if (auto l = spdlog::get(n)) {
        return l;
    }
    auto l = std::make_shared<spdlog::logger>(n, shared_sink());
    configure(*l, current_settings);
    spdlog::register_logger(l);
    return l;
}

}  // namespace

void append_utc_time(std::string& out, std::chrono::system_clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
    const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
    // "YYYY-MM-DDTHH:MM:SS" of the last second rendered on this thread.
    thread_local std::time_t cached_secs = -1;
    thread_local std::array<char, 40> cached{};
    thread_local std::size_t cached_len = 0;
    if (secs != cached_secs) {
        std::tm tm{};
        gmtime_r(&secs, &tm);
        const auto n = std::snprintf(cached.data(), cached.size(), "%04d-%02d-%02dT%02d:%02d:%02d",
                                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                     tm.tm_min, tm.tm_sec);
        cached_len = n > 0 ? static_cast<std::size_t>(n) : 0;
        cached_secs = secs;
    }
    out.append(cached.data(), cached_len);
    const auto milli = static_cast<int>(ms.count() % 1000);
    const char frac[] = {'.', static_cast<char>('0' + milli / 100),
                         static_cast<char>('0' + milli / 10 % 10),
                         static_cast<char>('0' + milli % 10), 'Z'};
    out.append(frac, sizeof frac);
}

std::string format_utc_time(std::chrono::system_clock::time_point t) {
    std::string out;
    append_utc_time(out, t);
    return out;
}

void append_json_escaped(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        switch (c) {
            case '"':
                out += "\\\"";
                continue;
            case '\\':
                out += "\\\\";
                continue;
            case '\n':
                out += "\\n";
                continue;
            case '\r':
                out += "\\r";
                continue;
            case '\t':
                out += "\\t";
                continue;
            default:
                break;
        }
        // Printable ASCII passes; anything else (controls, DEL, bytes >= 0x80) is escaped per
        // byte. Log lines are for operators and must stay parseable whatever a client sent.
        if (c >= 0x20 && c < 0x7f) {
            out.push_back(static_cast<char>(c));
        } else {
            out += "\\u00";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xf]);
        }
    }
}

void setup_logging(const config::log_config& cfg) {
    std::lock_guard lock(setup_mu);
    current_settings = cfg;
    for (auto name : logger_names) {
        make_or_get(name);
    }
    // Every logger, listed or not: all follow log.format and log.level.
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { configure(*l, cfg); });
}

std::shared_ptr<spdlog::logger> get_logger(std::string_view name) {
    std::lock_guard lock(setup_mu);
    return make_or_get(name);
}

}  // namespace clerk::proxy
