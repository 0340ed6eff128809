#pragma once
// base64url (RFC 4648 §5) without padding, as used by JWS compact serialization (RFC 7515 §2).
// Pure and allocation-bounded: used by token classification and the JWT verifier.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace clerk::core {

/// Decodes unpadded base64url. Strict: only `A-Z a-z 0-9 - _` are accepted; '=' padding,
/// whitespace, the standard alphabet's '+' and '/', a length of 4n+1, and non-zero unused
/// trailing bits are all refused (so every byte string has exactly one accepted encoding).
/// Returns nullopt on any refusal; never throws for bad input. "" decodes to "".
std::optional<std::string> base64url_decode(std::string_view in);

/// Encodes bytes as unpadded base64url.
std::string base64url_encode(std::string_view bytes);

/// Encodes bytes (a digest, a signature) as unpadded base64url.
std::string base64url_encode(std::span<const std::uint8_t> bytes);

}  // namespace clerk::core
