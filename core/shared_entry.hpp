#pragma once
// The shared verification cache's entries (docs/reference.md §15): Redis keys and MACed values.
// Pure (no I/O): the Redis client lives in proxy/.
//
// Both secrets derive from the Clerk key that verifies (HMAC-SHA256 of the key over a fixed
// label): the key digest names the entry (prefix + hex HMAC of the token: no token, no plain
// SHA-256 of one), the MAC binds the value to that name. So whoever can write to Redis cannot
// forge an identity, an entry cannot be moved to another token's key, and services with
// different Clerk keys sharing one Redis never read each other's entries.
#include "core/identity.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace clerk::core {

class shared_entry_codec {
public:
    /// `clerk_key`: the key that verifies (machine secret key when set, else the secret key).
    shared_entry_codec(std::string_view clerk_key, std::string prefix);

    /// prefix + 64 hex characters.
    std::string key_for(std::string_view token) const;

    /// A verified identity, valid until `until_ms` (ms since the epoch).
    std::string encode_positive(std::string_view key, const identity& id, long long until_ms) const;
    /// A definitive rejection with its reason, valid until `until_ms`.
    std::string encode_negative(std::string_view key, std::string_view reason,
                                long long until_ms) const;

    struct entry {
        std::shared_ptr<const identity> id;  ///< set for a positive entry
        std::string_view negative_reason;    ///< static string, set for a negative entry
        long long until_ms = 0;
    };
    enum class decode_status { ok, bad_mac, malformed, expired };
    /// Checks the MAC first (a value of any other origin is bad_mac), then the payload.
    decode_status decode(std::string_view key, std::string_view value, long long now_ms,
                         entry& out) const;

    /// hex(MAC(key, payload)) + payload: what encode_* store (public for the fuzz target,
    /// which must reach the payload parser behind the MAC).
    std::string seal(std::string_view key, std::string_view payload) const;

private:
    std::array<std::uint8_t, 32> mac(std::string_view key, std::string_view payload) const;

    std::array<std::uint8_t, 32> name_key_{};
    std::array<std::uint8_t, 32> mac_key_{};
    std::string prefix_;
};

}  // namespace clerk::core
