#include "core/base64url.hpp"

#include <array>
#include <cstddef>

namespace clerk::core {
namespace {

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::uint8_t invalid = 0xFF;

// 256-entry reverse table, built at compile time: 0..63 for alphabet bytes, `invalid` otherwise.
constexpr std::array<std::uint8_t, 256> make_reverse() {
    std::array<std::uint8_t, 256> t{};
    for (auto& v : t) {
        v = invalid;
    }
    for (std::size_t i = 0; i < alphabet.size(); ++i) {
        t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
    }
    return t;
}

constexpr std::array<std::uint8_t, 256> reverse = make_reverse();

std::string encode_bytes(const unsigned char* p, std::size_t n) {
    std::string out;
    out.reserve((n * 4 + 2) / 3);
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        const std::uint32_t v =
            (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | std::uint32_t{p[i + 2]};
        out.push_back(alphabet[(v >> 18) & 0x3F]);
        out.push_back(alphabet[(v >> 12) & 0x3F]);
        out.push_back(alphabet[(v >> 6) & 0x3F]);
        out.push_back(alphabet[v & 0x3F]);
    }
    const std::size_t rest = n - i;
    if (rest == 1) {
        const std::uint32_t v = std::uint32_t{p[i]} << 16;
        out.push_back(alphabet[(v >> 18) & 0x3F]);
        out.push_back(alphabet[(v >> 12) & 0x3F]);
    } else if (rest == 2) {
        const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8);
        out.push_back(alphabet[(v >> 18) & 0x3F]);
        out.push_back(alphabet[(v >> 12) & 0x3F]);
        out.push_back(alphabet[(v >> 6) & 0x3F]);
    }
    return out;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view in) {
    // A final group of one character carries only 6 bits: never a whole byte.
    if (in.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(in.size() / 4 * 3 + 2);

    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        const std::uint8_t v = reverse[static_cast<unsigned char>(c)];
        if (v == invalid) {
            return std::nullopt;
        }
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
        acc &= (1U << bits) - 1U;  // keep only the undecoded low bits
    }
    // Unused trailing bits (2 or 4) must be zero: "QQ" is "A", "QR" is refused (RFC 4648 §3.5).
    if (acc != 0) {
        return std::nullopt;
    }
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    return encode_bytes(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

std::string base64url_encode(std::span<const std::uint8_t> bytes) {
    return encode_bytes(bytes.data(), bytes.size());
}

}  // namespace clerk::core
