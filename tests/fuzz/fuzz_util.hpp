#pragma once
// Helpers shared by the libFuzzer targets in this folder (tests only).
//
// Inputs are split on '\n' rather than decoded with FuzzedDataProvider so that the seed corpora
// stay readable text files that say what they test ("GET\n/public/..%2fadmin").
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace clerk::fuzz {

/// Aborts the process (libFuzzer records the input as a crash) when an invariant is violated.
/// `what` names the invariant; it is printed so that a crash report says which one failed.
inline void check(bool ok, const char* what) {
    if (!ok) {
        // stderr: unbuffered, so the line survives abort() when output goes to a pipe (ctest).
        std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
        std::abort();
    }
}

inline std::string_view as_view(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

/// Splits `in` at the first `max_parts - 1` newlines: the last part keeps the rest, newlines
/// included, so every byte of the input reaches some field.
inline std::vector<std::string_view> split_lines(std::string_view in, std::size_t max_parts) {
    std::vector<std::string_view> parts;
    while (parts.size() + 1 < max_parts) {
        const auto nl = in.find('\n');
        if (nl == std::string_view::npos) {
            break;
        }
        parts.push_back(in.substr(0, nl));
        in.remove_prefix(nl + 1);
    }
    parts.push_back(in);
    return parts;
}

/// True when `needle` lies within `hay` (same memory), not just equal to some part of it.
inline bool views_into(std::string_view needle, std::string_view hay) {
    // Compared as integers: relational operators on pointers into different arrays are unspecified.
    const auto b = reinterpret_cast<std::uintptr_t>(hay.data());
    const auto n = reinterpret_cast<std::uintptr_t>(needle.data());
    return n >= b && n - b <= hay.size() && needle.size() <= hay.size() - (n - b);
}

}  // namespace clerk::fuzz
