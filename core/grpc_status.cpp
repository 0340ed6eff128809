#include "core/grpc_status.hpp"

#include "core/problem.hpp"

namespace clerk::core {

bool is_grpc_content_type(std::string_view ct) {
    constexpr std::string_view prefix = "application/grpc";
    if (ct.size() < prefix.size()) {
        return false;
    }
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        char c = ct[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (c != prefix[i]) {
            return false;
        }
    }
    // "application/grpc" exactly, or followed by a subtype suffix (+proto, -web) or parameters.
    return ct.size() == prefix.size() || ct[prefix.size()] == '+' || ct[prefix.size()] == '-' ||
           ct[prefix.size()] == ';';
}

int grpc_status_for_http(int http_status) {
    switch (http_status) {
        case 400:
            return 3;  // INVALID_ARGUMENT
        case 401:
            return 16;  // UNAUTHENTICATED
        case 403:
            return 7;  // PERMISSION_DENIED
        case 413:
        case 431:
            return 8;  // RESOURCE_EXHAUSTED
        case 502:
        case 503:
            return 14;  // UNAVAILABLE
        case 504:
            return 4;  // DEADLINE_EXCEEDED
        default:
            return 2;  // UNKNOWN
    }
}

std::string grpc_percent_encode(std::string_view text) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size());
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c > 0x7E || c == '%') {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xF];
        } else {
            out += ch;
        }
    }
    return out;
}

std::string grpc_message_for(decision_kind kind, std::string_view reason) {
    const auto spec = problem_for(kind);
    std::string text(spec.error);
    if (!reason.empty()) {
        text += ": ";
        text += reason;
    }
    return grpc_percent_encode(text);
}

}  // namespace clerk::core
