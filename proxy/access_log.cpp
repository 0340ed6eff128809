#include "proxy/access_log.hpp"

#include "proxy/logging.hpp"

#include <cstdio>

namespace clerk::proxy {
namespace {

std::string fixed3(double v) {
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "%.3f", v);
    return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

void json_string(std::string& out, std::string_view key, std::string_view value, bool null_empty) {
    out += ",\"";
    out += key;
    out += "\":";
    if (null_empty && value.empty()) {
        out += "null";
        return;
    }
    out.push_back('"');
    append_json_escaped(out, value);
    out.push_back('"');
}

void json_raw(std::string& out, std::string_view key, std::string_view value) {
    out += ",\"";
    out += key;
    out += "\":";
    out += value;
}

// Text values are client-controlled (method, path, request id): the same escaping as JSON keeps
// them on one line and free of control characters.
void text_pair(std::string& out, std::string_view key, std::string_view value) {
    if (!out.empty()) {
        out.push_back(' ');
    }
    out += key;
    out.push_back('=');
    if (value.empty()) {
        out.push_back('-');
    } else {
        append_json_escaped(out, value);
    }
}

std::string_view cache_name(const access_record& r) {
    return r.cache ? core::to_string(*r.cache) : std::string_view("none");
}

}  // namespace

std::string format_access_json(const access_record& r) {
    std::string out;
    out.reserve(256);
    out += "{\"time\":\"";
    out += format_utc_time(r.time);
    out += R"(","level":"info","logger":"access","msg":"request")";
    json_string(out, "request_id", r.request_id, false);
    json_string(out, "method", r.method, false);
    json_string(out, "path", r.path, false);
    json_raw(out, "status", std::to_string(r.status));
    json_raw(out, "duration_ms", fixed3(r.duration_ms));
    json_raw(out, "bytes", std::to_string(r.bytes));
    json_string(out, "token_type", r.token_type ? core::to_string(*r.token_type) : "", true);
    json_string(out, "subject", r.subject, true);
    json_string(out, "token_id", r.token_id, true);
    json_string(out, "cache", cache_name(r), false);
    json_raw(out, "upstream_ms", r.upstream_ms ? fixed3(*r.upstream_ms) : "null");
    out.push_back('}');
    return out;
}

std::string format_access_text(const access_record& r) {
    std::string out;
    text_pair(out, "time", format_utc_time(r.time));
    text_pair(out, "request_id", r.request_id);
    text_pair(out, "method", r.method);
    text_pair(out, "path", r.path);
    text_pair(out, "status", std::to_string(r.status));
    text_pair(out, "duration_ms", fixed3(r.duration_ms));
    text_pair(out, "bytes", std::to_string(r.bytes));
    text_pair(out, "token_type", r.token_type ? core::to_string(*r.token_type) : "");
    text_pair(out, "subject", r.subject);
    text_pair(out, "token_id", r.token_id);
    text_pair(out, "cache", cache_name(r));
    text_pair(out, "upstream_ms", r.upstream_ms ? fixed3(*r.upstream_ms) : "");
    return out;
}

void log_access(const config::log_config& cfg, const access_record& r) {
    if (!cfg.access_log) {
        return;
    }
    static const auto logger = get_logger("access");
    // The line is passed as an argument, never as a format string: it holds client bytes.
    if (cfg.format == config::log_format::json) {
        logger->info("{}", format_access_json(r));
    } else {
        logger->info("{}", format_access_text(r));
    }
}

}  // namespace clerk::proxy
