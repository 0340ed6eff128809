#pragma once
// A verified identity: the value the cache stores and the header plan renders.
#include "core/token_type.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace clerk::core {

struct identity {
    token_type type = token_type::m2m_token;
    token_format format = token_format::opaque;
    std::string subject;   ///< "mch_..." for machines
    std::string token_id;  ///< "mt_..." (opaque id or JWT jti; a session token's sid)
    std::string org_id;    ///< a session token's active organization ("" otherwise)
    std::vector<std::string> scopes;
    nlohmann::json claims;       ///< custom claims object, or null
    std::string claims_compact;  ///< claims rendered once: compact, ASCII-only JSON ("" if null)
    std::optional<long long> expires_at_ms;  ///< token expiration, ms since epoch; nullopt = never
    /// The recipients a locally verified token names (its `aud`, string or array): set for
    /// JWTs, whose recipient nobody else checks (possibly empty: no `aud`); nullopt for tokens
    /// Clerk verified with our own key, which Clerk scopes to us (recipient scoping).
    std::optional<std::vector<std::string>> audience;
    /// A session token's `azp` ("" when absent), checked against auth.authorized_parties;
    /// nullopt for other types.
    std::optional<std::string> authorized_party;

    bool is_machine() const { return subject.rfind("mch_", 0) == 0; }
};

/// Recipient scoping (`auth.audience`): true when `accepted` is empty (not configured), when
/// the identity carries no audience to check (Clerk verified it with our key), or when its
/// `aud` and `accepted` share at least one value. A JWT without `aud` fails a configured
/// audience (stricter than the SDK, which skips the check then).
bool audience_allows(const identity& id, const std::vector<std::string>& accepted) noexcept;

/// auth.authorized_parties: true when `accepted` is empty, when the identity is not a session
/// token (no authorized_party), or when its `azp` is one of `accepted`. A session token without
/// `azp` fails a configured list (so does the SDK's assertAuthorizedPartiesClaim).
bool authorized_party_allows(const identity& id, const std::vector<std::string>& accepted) noexcept;

/// Renders `claims` compact with every non-ASCII character escaped as \uXXXX (header-safe).
std::string compact_ascii_json(const nlohmann::json& j);

}  // namespace clerk::core
