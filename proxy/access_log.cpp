#include "proxy/access_log.hpp"

#include "proxy/logging.hpp"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>

namespace clerk::proxy {
namespace {

/// "%.3f" of `v`, appended without allocating.
void append_fixed3(std::string& out, double v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 3);
    out.append(buf, r.ec == std::errc() ? static_cast<std::size_t>(r.ptr - buf) : 0);
}

template <class Int>
void append_int(std::string& out, Int v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
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

// Text values are client-controlled (method, path, request id): the same escaping as JSON keeps
// them on one line and free of control characters (append_access_text).

std::string_view cache_name(const access_record& r) {
    return r.cache ? core::to_string(*r.cache) : std::string_view("none");
}

}  // namespace

void append_access_json(std::string& out, const access_record& r) {
    out += "{\"time\":\"";
    append_utc_time(out, r.time);
    out += R"(","level":"info","logger":"access","msg":"request")";
    json_string(out, "request_id", r.request_id, false);
    json_string(out, "method", r.method, false);
    json_string(out, "path", r.path, false);
    out += ",\"status\":";
    append_int(out, r.status);
    out += ",\"duration_ms\":";
    append_fixed3(out, r.duration_ms);
    out += ",\"bytes\":";
    append_int(out, r.bytes);
    json_string(out, "token_type", r.token_type ? core::to_string(*r.token_type) : "", true);
    json_string(out, "subject", r.subject, true);
    json_string(out, "token_id", r.token_id, true);
    json_string(out, "cache", cache_name(r), false);
    out += ",\"upstream_ms\":";
    if (r.upstream_ms) {
        append_fixed3(out, *r.upstream_ms);
    } else {
        out += "null";
    }
    json_string(out, "protocol", r.protocol, true);
    if (r.bytes_in) {
        out += ",\"bytes_in\":";
        append_int(out, *r.bytes_in);
    }
    out.push_back('}');
}

/// Pairs are separated by one space; the first one (at `start`) has no leading space.
void append_access_text(std::string& out, const access_record& r) {
    const auto start = out.size();
    const auto pair = [&out, start](std::string_view key, std::string_view value) {
        if (out.size() > start) {
            out.push_back(' ');
        }
        out += key;
        out.push_back('=');
        if (value.empty()) {
            out.push_back('-');
        } else {
            append_json_escaped(out, value);
        }
    };
    std::string num;  // rendered numbers (short: no allocation)
    const auto rendered = [&num](auto fill) -> std::string_view {
        num.clear();
        fill(num);
        return num;
    };
    pair("time", rendered([&r](std::string& o) { append_utc_time(o, r.time); }));
    pair("request_id", r.request_id);
    pair("method", r.method);
    pair("path", r.path);
    pair("status", rendered([&r](std::string& o) { append_int(o, r.status); }));
    pair("duration_ms", rendered([&r](std::string& o) { append_fixed3(o, r.duration_ms); }));
    pair("bytes", rendered([&r](std::string& o) { append_int(o, r.bytes); }));
    pair("token_type", r.token_type ? core::to_string(*r.token_type) : "");
    pair("subject", r.subject);
    pair("token_id", r.token_id);
    pair("cache", cache_name(r));
    pair("upstream_ms", r.upstream_ms
                            ? rendered([&r](std::string& o) { append_fixed3(o, *r.upstream_ms); })
                            : std::string_view());
    pair("protocol", r.protocol);
    if (r.bytes_in) {
        pair("bytes_in", rendered([&r](std::string& o) { append_int(o, *r.bytes_in); }));
    }
}

/// write(2) all of `data`, retrying on EINTR and short writes; gives up on any other error (a
/// closed stderr must not stop the proxy).
void write_all(std::string_view data) {
    while (!data.empty()) {
        const auto n = ::write(STDERR_FILENO, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

constexpr std::size_t flush_at = 16 * 1024;
constexpr std::size_t atomic_write = 4096;  // PIPE_BUF: one write(2) of this size never mixes

/// This thread's pending lines; written out when the thread ends.
struct line_buffer {
    std::string data;
    bool batching = false;
    line_buffer() { data.reserve(flush_at + 1024); }
    ~line_buffer() { flush(); }
    line_buffer(const line_buffer&) = delete;
    line_buffer& operator=(const line_buffer&) = delete;

    void flush() {
        std::string_view rest = data;
        while (!rest.empty()) {
            std::size_t n = rest.size();
            if (n > atomic_write) {
                // Cut after the last complete line that fits; a single longer line goes whole.
                const auto nl = rest.rfind('\n', atomic_write - 1);
                n = nl == std::string_view::npos ? rest.find('\n') + 1 : nl + 1;
                if (n == 0) {
                    n = rest.size();
                }
            }
            write_all(rest.substr(0, n));
            rest.remove_prefix(n);
        }
        data.clear();
    }
};

line_buffer& thread_buffer() {
    thread_local line_buffer b;
    return b;
}

std::string format_access_json(const access_record& r) {
    std::string out;
    out.reserve(256);
    append_access_json(out, r);
    return out;
}

std::string format_access_text(const access_record& r) {
    std::string out;
    append_access_text(out, r);
    return out;
}

void log_access(const config::log_config& cfg, const access_record& r) {
    if (!cfg.access_log) {
        return;
    }
    auto& b = thread_buffer();
    // The line holds client bytes (method, path, request id): they are escaped by the appenders
    // and never used as a format string.
    if (cfg.format == config::log_format::json) {
        append_access_json(b.data, r);
    } else {
        append_utc_time(b.data, std::chrono::system_clock::now());
        b.data += " info [access] ";
        append_access_text(b.data, r);
    }
    b.data.push_back('\n');
    if (!b.batching || b.data.size() >= flush_at) {
        b.flush();
    }
}

void access_log_batching(bool on) {
    auto& b = thread_buffer();
    b.batching = on;
    if (!on) {
        b.flush();
    }
}

void flush_access_log() {
    thread_buffer().flush();
}

}  // namespace clerk::proxy
