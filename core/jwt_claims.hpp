#pragma once
// Internal to core/jwt.cpp: from a verified JWT payload to an identity, per token type
// (M2M: docs/clerk-protocol.md §4.3; OAuth access token: §4.4; session token: §4.5). Pure.
#include "core/identity.hpp"
#include "core/token_type.hpp"

#include <nlohmann/json.hpp>

#include <string_view>

namespace clerk::core::jwt_detail {

/// The member `name` of `obj`, or nullptr.
const nlohmann::json* member(const nlohmann::json& obj, const char* name);
/// JS `x ?? fallback` semantics: nullptr when absent or null.
const nlohmann::json* present(const nlohmann::json& obj, const char* name);

/// Fills everything but `type`, `format` and `expires_at_ms` (the verifier's) from the signed
/// payload. Returns "" on success, else a jwt_reason (malformed, not_m2m, invalid_subject).
std::string_view map_claims(const nlohmann::json& payload, token_type kind, identity& out,
                            principal& who);

}  // namespace clerk::core::jwt_detail
