#pragma once
// A verified identity (the value the cache stores and the header plan renders) and the
// principal it speaks for.
#include "core/token_type.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace clerk::core {

/// Who a token speaks for: its subject and what the token grants. Every token of one machine
/// (or user) carries the same principal, so the verification cache keeps one shared copy per
/// distinct principal however many of its tokens are cached (verification_cache interns it).
struct principal {
    std::string subject;  ///< "mch_..." for machines
    std::string org_id;   ///< a session token's active organization ("" otherwise)
    std::vector<std::string> scopes;
    nlohmann::json claims;       ///< custom claims object, or null
    std::string claims_compact;  ///< claims rendered once: compact, ASCII-only JSON ("" if null)
    /// The recipients a locally verified token names (its `aud`, string or array): set for
    /// JWTs, whose recipient nobody else checks (possibly empty: no `aud`); nullopt for tokens
    /// Clerk verified with our own key, which Clerk scopes to us (recipient scoping).
    std::optional<std::vector<std::string>> audience;
    /// A session token's `azp` ("" when absent), checked against auth.authorized_parties;
    /// nullopt for other types.
    std::optional<std::string> authorized_party;

    bool is_machine() const { return subject.starts_with("mch_"); }
    bool operator==(const principal&) const = default;
};

struct principal_hash {
    std::size_t operator()(const principal& p) const noexcept;
};

/// A verified token: what is its own (type, id, expiry) and whom it speaks for.
struct identity {
    token_type type = token_type::m2m_token;
    token_format format = token_format::opaque;
    std::string token_id;                    ///< "mt_..." (opaque id or JWT jti; a session's sid)
    std::optional<long long> expires_at_ms;  ///< token expiration, ms since epoch; nullopt = never
    /// Never null. Shared and immutable: to change a field, build a new principal.
    std::shared_ptr<const principal> who = empty_principal();

    /// The one empty principal every default identity starts with.
    static std::shared_ptr<const principal> empty_principal();
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
