#include "proxy/http/message_rules.hpp"

#include "core/ascii.hpp"

#include <boost/beast/core/string.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <vector>

namespace clerk::proxy {
namespace http = boost::beast::http;
namespace {

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos) {
        return {};
    }
    return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

using core::iequals;

core::auth_decision bad(std::string_view reason) {
    return {core::decision_kind::bad_request, reason};
}

/// A Content-Length value: 1*DIGIT, or a list of equal numbers ("5, 5", which RFC 9110 §8.6
/// allows a recipient to accept). Anything else is invalid.
bool parse_content_length(std::string_view v, std::optional<std::uint64_t>& out) {
    while (true) {
        const auto comma = v.find(',');
        const std::string_view item = trim(v.substr(0, comma));
        if (item.empty() || item.size() > 19 ||
            !std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return false;
        }
        std::uint64_t n = 0;
        std::from_chars(item.data(), item.data() + item.size(), n);
        if (out && *out != n) {
            return false;
        }
        out = n;
        if (comma == std::string_view::npos) {
            return true;
        }
        v.remove_prefix(comma + 1);
    }
}

/// The Connection tokens of `h` into `out`, reusing both vectors' storage (per thread): no
/// allocation per message once a connection has seen its usual Connection header.
void conn_tokens_of(const header_fields& h, std::vector<std::string>& out) {
    thread_local std::vector<std::string_view> values;
    values.clear();
    for (auto [it, end] = h.equal_range(http::field::connection); it != end; ++it) {
        values.push_back(it->value());
    }
    core::connection_tokens(values, out);
}

}  // namespace

core::auth_decision check_request_framing(const header_fields& h, unsigned version,
                                          std::uint64_t max_body_bytes, request_framing& out) {
    out = {};
    std::size_t te_count = 0;
    std::string_view te_value;
    std::size_t host_count = 0;
    for (const auto& f : h) {
        const auto name = f.name_string();
        if (iequals(name, "content-length")) {
            if (!parse_content_length(f.value(), out.content_length)) {
                return bad("invalid_content_length");
            }
        } else if (iequals(name, "transfer-encoding")) {
            ++te_count;
            te_value = f.value();
        } else if (iequals(name, "host")) {
            ++host_count;
        }
    }
    if (te_count > 0) {
        if (out.content_length) {
            return bad("content_length_with_transfer_encoding");
        }
        // Only "chunked" alone: anything else ("gzip, chunked", "chunked, chunked", "identity")
        // is a framing the proxy and the upstream might read differently.
        if (te_count > 1 || !iequals(trim(te_value), "chunked")) {
            return bad("unsupported_transfer_encoding");
        }
        out.chunked = true;
    }
    if (host_count > 1 || (version >= 11 && host_count == 0)) {
        return bad("invalid_host");
    }
    if (max_body_bytes > 0 && out.content_length && *out.content_length > max_body_bytes) {
        return {core::decision_kind::body_too_large, ""};
    }
    return {};
}

bool is_websocket_upgrade(const header_fields& h, unsigned version, std::string_view method) {
    if (version != 11 || method != "GET") {
        return false;
    }
    bool websocket = false;
    for (auto [it, end] = h.equal_range(http::field::upgrade); it != end && !websocket; ++it) {
        const std::string_view v = it->value();
        for (std::size_t at = 0; at <= v.size();) {
            auto comma = v.find(',', at);
            if (comma == std::string_view::npos) {
                comma = v.size();
            }
            if (iequals(trim(v.substr(at, comma - at)), "websocket")) {
                websocket = true;
                break;
            }
            at = comma + 1;
        }
    }
    if (!websocket) {
        return false;
    }
    thread_local std::vector<std::string> conn;
    conn_tokens_of(h, conn);
    return std::find(conn.begin(), conn.end(), "upgrade") != conn.end();
}

bool is_parse_error(const boost::system::error_code& ec) {
    return ec.category() == http::make_error_code(http::error::bad_version).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message;
}

bool is_sane_request_id(std::string_view id) {
    return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}

namespace {

/// xoshiro256** (Blackman and Vigna), one state per thread seeded once from the OS CSPRNG:
/// request ids need uniqueness, not secrecy, and RAND_bytes per request costs a getpid() (its
/// fork check) and a lock.
class request_id_generator {
public:
    request_id_generator() {
        if (RAND_bytes(reinterpret_cast<unsigned char*>(s_.data()), static_cast<int>(sizeof s_)) !=
            1) {
            // A broken CSPRNG: ids only need to differ, so the clock and the thread's address
            // still give distinct sequences.
            const auto t = static_cast<std::uint64_t>(
                std::chrono::steady_clock::now().time_since_epoch().count());
            s_ = {t, reinterpret_cast<std::uintptr_t>(this), t ^ 0x9e3779b97f4a7c15ULL, 1};
        }
        if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) {
            s_[0] = 1;  // the all-zero state is the one xoshiro cannot leave
        }
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> s_{};
};

}  // namespace

void generate_request_id(std::string& out) {
    thread_local request_id_generator gen;
    static constexpr char hex[] = "0123456789abcdef";
    out.resize(32);
    for (int half = 0; half < 2; ++half) {
        std::uint64_t v = gen.next();
        for (int i = 0; i < 16; ++i) {
            out[static_cast<std::size_t>(half * 16 + i)] = hex[v & 0xf];
            v >>= 4;
        }
    }
}

std::string generate_request_id() {
    std::string out;
    generate_request_id(out);
    return out;
}

void request_id_for(const header_fields& h, std::string& out) {
    auto [it, end] = h.equal_range("X-Request-Id");
    if (it != end && std::next(it) == end && is_sane_request_id(it->value())) {
        out.assign(it->value());
        return;
    }
    generate_request_id(out);
}

std::string request_id_for(const header_fields& h) {
    std::string out;
    request_id_for(h, out);
    return out;
}

namespace {

/// The request rewrite, handing each outgoing field to `emit(name, value)` in order.
/// `scratch` is reused storage for built values (identity headers); `xff` for the appended
/// X-Forwarded-For. Both only need to live until the call returns.
template <class Emit>
void rewrite_request(const header_fields& in, const forward_params& p, std::string& scratch,
                     std::string& xff, Emit&& emit) {
    thread_local std::vector<std::string> conn;  // reused: Connection tokens are short (SSO)
    conn_tokens_of(in, conn);
    xff.clear();
    std::string_view client_host;
    for (const auto& f : in) {
        const auto name = f.name_string();
        if (p.rules->must_remove(name, conn) || iequals(name, "content-length")) {
            continue;
        }
        if (iequals(name, "authorization") && !p.forward_authorization) {
            continue;
        }
        if (iequals(name, "host")) {
            client_host = f.value();
            continue;
        }
        if (iequals(name, "x-forwarded-for")) {
            if (!xff.empty()) {
                xff += ", ";
            }
            xff += trim(f.value());
            continue;
        }
        if (iequals(name, "x-forwarded-proto") || iequals(name, "x-forwarded-host") ||
            iequals(name, "x-request-id")) {
            continue;  // set below
        }
        emit(name, f.value());
    }
    if (p.id != nullptr) {
        p.rules->for_each_identity_header(*p.id, scratch, emit);
    }
    if (!p.peer_ip.empty()) {
        if (!xff.empty()) {
            xff += ", ";
        }
        xff += p.peer_ip;
    }
    if (!xff.empty()) {
        emit("X-Forwarded-For", xff);
    }
    emit("X-Forwarded-Proto", p.downstream_tls ? "https" : "http");
    if (!client_host.empty()) {
        emit("X-Forwarded-Host", client_host);
    }
    emit("Host", p.preserve_host && !client_host.empty() ? client_host : p.upstream_host);
    emit("X-Request-Id", p.request_id);
    if (p.websocket_upgrade) {
        emit("Connection", "upgrade");
        emit("Upgrade", "websocket");
    }
}

template <class Emit>
void rewrite_response(const header_fields& in, std::string_view request_id, bool switching,
                      Emit&& emit) {
    thread_local std::vector<std::string> conn;
    conn_tokens_of(in, conn);
    for (const auto& f : in) {
        const auto name = f.name_string();
        if (core::is_hop_by_hop(name) || iequals(name, "content-length") ||
            iequals(name, "x-request-id")) {
            continue;
        }
        if (std::any_of(conn.begin(), conn.end(),
                        [name](const std::string& t) { return iequals(name, t); })) {
            continue;
        }
        emit(name, f.value());
    }
    emit("X-Request-Id", request_id);
    if (switching) {
        emit("Connection", "upgrade");
        emit("Upgrade", "websocket");
    }
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
    // One resize and two copies instead of four appends (this runs for every field, both ways).
    const std::size_t at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    p += name.copy(p, name.size());  // (string_view::copy: an empty default view is fine)
    *p++ = ':';
    *p++ = ' ';
    p += value.copy(p, value.size());
    *p++ = '\r';
    *p = '\n';
}

}  // namespace

forward_params forward_params_for(const core::header_rules& rules, const config::config& cfg,
                                  const core::identity* id, std::string_view peer_ip,
                                  bool downstream_tls, std::string_view request_id) {
    forward_params fp;
    fp.rules = &rules;
    fp.id = id;
    fp.forward_authorization = cfg.auth.forward_authorization;
    fp.preserve_host = cfg.upstream.preserve_host;
    fp.upstream_host = cfg.upstream.host_header;
    fp.peer_ip = peer_ip;
    fp.downstream_tls = downstream_tls;
    fp.request_id = request_id;
    return fp;
}

void rewrite_request_headers(const header_fields& in, header_fields& out, const forward_params& p) {
    std::string scratch;
    std::string xff;
    rewrite_request(in, p, scratch, xff, [&out](std::string_view name, std::string_view value) {
        out.insert(name, value);
    });
}

void append_request_headers(const header_fields& in, const forward_params& p, std::string& out,
                            std::string& scratch) {
    thread_local std::string xff;
    rewrite_request(in, p, scratch, xff, [&out](std::string_view name, std::string_view value) {
        append_field(out, name, value);
    });
}

void rewrite_response_headers(const header_fields& in, header_fields& out,
                              std::string_view request_id) {
    rewrite_response(in, request_id, false, [&out](std::string_view name, std::string_view value) {
        out.insert(name, value);
    });
}

void append_response_headers(const header_fields& in, std::string_view request_id, std::string& out,
                             bool switching) {
    rewrite_response(
        in, request_id, switching,
        [&out](std::string_view name, std::string_view value) { append_field(out, name, value); });
}

}  // namespace clerk::proxy
