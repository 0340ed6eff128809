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
    const std::size_t rest = in.size() % 4;
    if (rest == 1) {
        return std::nullopt;
    }
    const std::size_t quads = in.size() / 4;
    std::string out(quads * 3 + (rest == 0 ? 0 : rest - 1), '\0');
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    // Whole groups of four characters: three bytes each. `bad` collects the invalid markers
    // (0xFF) so the loop has a single test at its end.
    std::uint32_t bad = 0;
    for (std::size_t q = 0; q < quads; ++q, p += 4, o += 3) {
        const std::uint32_t a = reverse[p[0]];
        const std::uint32_t b = reverse[p[1]];
        const std::uint32_t c = reverse[p[2]];
        const std::uint32_t d = reverse[p[3]];
        bad |= a | b | c | d;
        const std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
        o[0] = static_cast<unsigned char>(v >> 16);
        o[1] = static_cast<unsigned char>(v >> 8);
        o[2] = static_cast<unsigned char>(v);
    }
    if ((bad & 0xC0U) != 0) {  // only `invalid` (0xFF) has the high bits set
        return std::nullopt;
    }
    // The final 2 or 3 characters: 1 or 2 bytes, and unused trailing bits (4 or 2) must be zero
    // ("QQ" is "A", "QR" is refused: RFC 4648 §3.5).
    if (rest != 0) {
        const std::uint32_t a = reverse[p[0]];
        const std::uint32_t b = reverse[p[1]];
        const std::uint32_t c = rest == 3 ? reverse[p[2]] : 0;
        if (((a | b | c) & 0xC0U) != 0) {
            return std::nullopt;
        }
        const std::uint32_t v = (a << 18) | (b << 12) | (c << 6);
        o[0] = static_cast<unsigned char>(v >> 16);
        if (rest == 3) {
            o[1] = static_cast<unsigned char>(v >> 8);
            if ((v & 0xFFU) != 0) {
                return std::nullopt;
            }
        } else if ((v & 0xFFFFU) != 0) {
            return std::nullopt;
        }
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
