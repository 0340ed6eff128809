#pragma once
// ASCII case helpers for protocol tokens (header names, schemes, config words). Locale-free on
// purpose: locale-dependent or UTF-8 folding must never let two different byte strings compare
// equal (a header name that folds to "authorization" in some locale is not Authorization).
#include <algorithm>
#include <string>
#include <string_view>

namespace clerk::core {

constexpr char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr char ascii_upper(char c) noexcept {
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

inline std::string to_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) { return ascii_lower(c); });
    return out;
}

inline std::string to_upper(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) { return ascii_upper(c); });
    return out;
}

/// ASCII case-insensitive equality.
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

/// ASCII case-insensitive prefix test.
constexpr bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace clerk::core
