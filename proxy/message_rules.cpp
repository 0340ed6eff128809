#include "proxy/message_rules.hpp"

#include <boost/beast/core/string.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
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

bool iequals(std::string_view a, std::string_view b) {
    return boost::beast::iequals(a, b);
}

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

std::vector<std::string> conn_tokens_of(const http::fields& h) {
    std::vector<std::string_view> values;
    for (auto [it, end] = h.equal_range(http::field::connection); it != end; ++it) {
        values.push_back(it->value());
    }
    return core::connection_tokens(values);
}

}  // namespace

core::auth_decision check_request_framing(const http::fields& h, unsigned version,
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

bool is_sane_request_id(std::string_view id) {
    return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}

std::string generate_request_id() {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        // RAND_bytes failing means the CSPRNG is broken; an id is not security sensitive, so a
        // counter keeps requests traceable rather than failing them.
        static std::atomic<std::uint64_t> counter{0};
        const auto n = counter.fetch_add(1);
        for (std::size_t i = 0; i < 8; ++i) {
            bytes[i] = static_cast<unsigned char>(n >> (8 * i));
        }
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(32);
    for (unsigned char b : bytes) {
        out.push_back(hex[b >> 4]);
        out.push_back(hex[b & 0xf]);
    }
    return out;
}

std::string request_id_for(const http::fields& h) {
    auto [it, end] = h.equal_range("X-Request-Id");
    if (it != end && std::next(it) == end && is_sane_request_id(it->value())) {
        return std::string(it->value());
    }
    return generate_request_id();
}

void rewrite_request_headers(const http::fields& in, http::fields& out, const forward_params& p) {
    const auto conn = conn_tokens_of(in);
    std::string xff;
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
        out.insert(name, f.value());
    }
    if (p.id != nullptr) {
        for (const auto& [name, value] : p.rules->identity_headers(*p.id)) {
            out.insert(name, value);
        }
    }
    if (!p.peer_ip.empty()) {
        if (!xff.empty()) {
            xff += ", ";
        }
        xff += p.peer_ip;
    }
    if (!xff.empty()) {
        out.set("X-Forwarded-For", xff);
    }
    out.set("X-Forwarded-Proto", p.downstream_tls ? "https" : "http");
    if (!client_host.empty()) {
        out.set("X-Forwarded-Host", client_host);
    }
    if (p.preserve_host && !client_host.empty()) {
        out.set(http::field::host, client_host);
    } else {
        out.set(http::field::host, p.upstream_host);
    }
    out.set("X-Request-Id", p.request_id);
}

void rewrite_response_headers(const http::fields& in, http::fields& out,
                              std::string_view request_id) {
    const auto conn = conn_tokens_of(in);
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
        out.insert(name, f.value());
    }
    out.set("X-Request-Id", request_id);
}

}  // namespace clerk::proxy
