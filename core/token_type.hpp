#pragma once
// Token types of docs/reference.md §4 and their config/header spelling.
#include <optional>
#include <string_view>

namespace clerk::core {

enum class token_type { m2m_token, api_key, oauth_token, session_token };
enum class token_format { opaque, jwt };

constexpr std::string_view to_string(token_type t) {
    switch (t) {
        case token_type::m2m_token:
            return "m2m_token";
        case token_type::api_key:
            return "api_key";
        case token_type::oauth_token:
            return "oauth_token";
        case token_type::session_token:
            return "session_token";
    }
    return "unknown";
}

/// Parses "m2m_token" | "api_key" | "oauth_token" | "session_token" (not "any").
constexpr std::optional<token_type> parse_token_type(std::string_view s) {
    if (s == "m2m_token") {
        return token_type::m2m_token;
    }
    if (s == "api_key") {
        return token_type::api_key;
    }
    if (s == "oauth_token") {
        return token_type::oauth_token;
    }
    if (s == "session_token") {
        return token_type::session_token;
    }
    return std::nullopt;
}

}  // namespace clerk::core
