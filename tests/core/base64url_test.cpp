#include "core/base64url.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

using clerk::core::base64url_decode;
using clerk::core::base64url_encode;

namespace {

struct vector_case {
    std::string_view name;
    std::string_view bytes;
    std::string_view encoded;
};

// RFC 4648 §10 test vectors, unpadded, plus the two characters that differ from base64.
constexpr vector_case vectors[] = {
    {"empty", "", ""},
    {"f", "f", "Zg"},
    {"fo", "fo", "Zm8"},
    {"foo", "foo", "Zm9v"},
    {"foob", "foob", "Zm9vYg"},
    {"fooba", "fooba", "Zm9vYmE"},
    {"foobar", "foobar", "Zm9vYmFy"},
    {"url alphabet", "\xfb\xff\xbf", "-_-_"},
    {"nul byte", std::string_view("\0", 1), "AA"},
    {"high bytes", "\xff\xfe", "__4"},
    {"json", R"({"sub":"mch_1"})", "eyJzdWIiOiJtY2hfMSJ9"},
};

struct reject_case {
    std::string_view name;
    std::string_view encoded;
};

constexpr reject_case rejects[] = {
    {"padding", "Zg=="},
    {"single padding", "Zm8="},
    {"padding only", "=="},
    {"standard plus", "+/+/"},
    {"standard slash", "ab/c"},
    {"space", "Zm 9v"},
    {"newline", "Zm9v\n"},
    {"length 4n+1", "Zm9vY"},
    {"single char", "Z"},
    {"non-zero trailing bits (2 chars)", "Zh"},
    {"non-zero trailing bits (3 chars)", "Zm9"},
    {"dot", "Zm.v"},
    {"non-ascii", "Zm\xc3\xa9"},
    {"nul", std::string_view("Zm\0v", 4)},
};

}  // namespace

TEST_CASE("base64url round-trips RFC 4648 vectors", "[base64url]") {
    for (const auto& c : vectors) {
        SECTION(std::string(c.name)) {
            CHECK(base64url_encode(c.bytes) == c.encoded);
            const auto decoded = base64url_decode(c.encoded);
            REQUIRE(decoded.has_value());
            CHECK(*decoded == c.bytes);
        }
    }
}

TEST_CASE("base64url_decode is strict", "[base64url]") {
    for (const auto& c : rejects) {
        SECTION(std::string(c.name)) {
            CHECK_FALSE(base64url_decode(c.encoded).has_value());
        }
    }
}

TEST_CASE("base64url_encode of a byte span", "[base64url]") {
    constexpr std::array<std::uint8_t, 3> bytes{0xfb, 0xff, 0xbf};
    CHECK(base64url_encode(std::span<const std::uint8_t>(bytes)) == "-_-_");
    CHECK(base64url_encode(std::span<const std::uint8_t>()).empty());
}

TEST_CASE("base64url round-trips every byte value and length", "[base64url]") {
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all.push_back(static_cast<char>(i));
    }
    for (std::size_t n = 0; n <= all.size(); n += 7) {
        const std::string_view in = std::string_view(all).substr(0, n);
        const std::string enc = base64url_encode(in);
        CHECK(enc.find('=') == std::string::npos);
        const auto dec = base64url_decode(enc);
        REQUIRE(dec.has_value());
        CHECK(*dec == in);
    }
}

namespace {

// The straightforward bit-accumulator decoder (the previous implementation): the oracle for
// the four-at-a-time decoder.
std::optional<std::string> reference_decode(std::string_view in) {
    static constexpr std::string_view abc =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (in.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        const auto pos = abc.find(c);
        if (pos == std::string_view::npos) {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
        acc &= (1U << bits) - 1U;
    }
    if (acc != 0) {
        return std::nullopt;
    }
    return out;
}

}  // namespace

TEST_CASE("base64url_decode agrees with a bit-by-bit reference on random input", "[base64url]") {
    // Mostly alphabet characters, sometimes one that is not: every length 0..40, many times.
    static constexpr std::string_view chars =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_AQgw=+/ .\xff";
    std::uint32_t seed = 12345;
    auto next = [&seed] {
        seed = seed * 1664525U + 1013904223U;
        return seed >> 8;
    };
    for (int round = 0; round < 400; ++round) {
        for (std::size_t len = 0; len <= 40; ++len) {
            std::string s;
            for (std::size_t i = 0; i < len; ++i) {
                const std::size_t pick = next() % 100 < 97 ? next() % 64 : 64 + next() % 10;
                s.push_back(chars[pick]);
            }
            INFO(s);
            REQUIRE(base64url_decode(s) == reference_decode(s));
        }
    }
}
