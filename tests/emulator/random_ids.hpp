#pragma once
// Random identifiers in Clerk's formats (docs/clerk-protocol.md §7), from OpenSSL's CSPRNG.

#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include <openssl/rand.h>

namespace clerk::emulator {

/// `count` characters drawn uniformly from `alphabet` (size <= 256), by rejection sampling.
inline std::string random_chars(std::size_t count, std::string_view alphabet) {
    std::string out;
    out.reserve(count);
    const unsigned limit = 256 - (256 % alphabet.size());
    std::array<unsigned char, 64> buf{};
    while (out.size() < count) {
        if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
            throw std::runtime_error("RAND_bytes failed");
        }
        for (unsigned char byte : buf) {
            if (byte < limit && out.size() < count) {
                out.push_back(alphabet[byte % alphabet.size()]);
            }
        }
    }
    return out;
}

inline std::string random_alnum(std::size_t count) {
    return random_chars(count, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
}

inline std::string random_hex(std::size_t count) {
    return random_chars(count, "0123456789abcdef");
}

/// `mch_` + 27 word characters (spec `^mch_\w{27}$`).
inline std::string new_machine_id() {
    return "mch_" + random_alnum(27);
}
/// Machine secret key: `ak_` + 32 alphanumerics (the length is a guess,
/// docs/clerk-protocol.md §9 O6).
inline std::string new_machine_secret() {
    return "ak_" + random_alnum(32);
}
/// Token id and JWT jti: `mt_` + 32 hex (spec `^mt_[0-9A-Fa-f]{32}$`).
inline std::string new_token_id() {
    return "mt_" + random_hex(32);
}
/// Opaque token secret: `mt_` + 32 mixed-case alphanumerics, unlike the id.
inline std::string new_token_secret() {
    return "mt_" + random_alnum(32);
}
/// JWKS kid: `ins_` + 27 alphanumerics.
inline std::string new_kid() {
    return "ins_" + random_alnum(27);
}
/// clerk_trace_id of error bodies.
inline std::string new_trace_id() {
    return random_hex(32);
}

}  // namespace clerk::emulator
