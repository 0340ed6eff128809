#include "config/env_expand.hpp"

namespace clerk::config {

namespace {

bool is_name_start(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}

bool is_valid_name(std::string_view name) {
    if (name.empty() || !is_name_start(name.front())) {
        return false;
    }
    for (char c : name) {
        if (!is_name_char(c)) {
            return false;
        }
    }
    return true;
}

}  // namespace

expand_result expand_env(std::string_view text, const env_lookup& env) {
    expand_result out;
    out.value.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const char c = text[i];
        if (c != '$' || i + 1 == text.size()) {
            out.value.push_back(c);
            ++i;
            continue;
        }
        const char next = text[i + 1];
        if (next == '$') {  // "$$" -> "$"
            out.value.push_back('$');
            i += 2;
            continue;
        }
        if (next != '{') {  // a lone '$' is literal ("pa$word")
            out.value.push_back('$');
            ++i;
            continue;
        }
        const std::size_t close = text.find('}', i + 2);
        if (close == std::string_view::npos) {
            out.syntax_error = "unterminated \"${\"";
            return out;
        }
        const std::string_view inner = text.substr(i + 2, close - i - 2);
        std::string_view name = inner;
        std::optional<std::string_view> fallback;
        if (const auto sep = inner.find(":-"); sep != std::string_view::npos) {
            name = inner.substr(0, sep);
            fallback = inner.substr(sep + 2);
        }
        if (!is_valid_name(name)) {
            out.syntax_error = "bad variable reference \"${" + std::string(inner) + "}\"";
            return out;
        }
        // The value is inserted verbatim, never re-scanned: a secret may contain '$'.
        std::optional<std::string> value = env ? env(name) : std::nullopt;
        if (value && !value->empty()) {
            out.value += *value;
        } else if (fallback) {
            out.value += *fallback;
        } else {
            out.unset.emplace_back(name);
        }
        i = close + 1;
    }
    return out;
}

}  // namespace clerk::config
