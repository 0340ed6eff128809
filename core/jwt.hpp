#pragma once
// Local verification of Clerk JWTs (docs/reference.md §4, §12): M2M tokens in JWT format
// (docs/clerk-protocol.md §4.3), OAuth JWT access tokens (§4.4) and session tokens (§4.5).
// Pure: no I/O, no clock reads (`now` is injected); keys come from a JWKS document or a PEM.
#include "core/clock.hpp"
#include "core/identity.hpp"
#include "core/jwk.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clerk::core {

/// An immutable set of RSA verification keys, shared as `std::shared_ptr<const jwt_key_set>`
/// and swapped whole on a JWKS refresh (requests in flight keep the set they started with).
///
/// @par Thread Safety
/// Immutable after construction: every member may be called concurrently.
class jwt_key_set {
public:
    /// Parses a JWKS document (`{"keys":[...]}`). Only usable RSA signing keys are kept
    /// (see jwk::from_json); other entries (EC, OKP, oct, missing n/e/kid, `use` enc, ...) are
    /// skipped silently. On failure returns nullptr and sets `error`: "invalid JSON",
    /// "JWKS is not an object with a keys array", or "no signing keys" when nothing is usable.
    static std::shared_ptr<const jwt_key_set> from_jwks_json(std::string_view json,
                                                             std::string& error) noexcept;

    /// One PEM public key (SPKI or PKCS#1), as configured in `clerk.jwt_key`. Such a set
    /// matches every kid (Clerk's SDK does the same with `jwtKey`), and accepts any of
    /// RS256/RS384/RS512. On failure returns nullptr and sets `error`.
    static std::shared_ptr<const jwt_key_set> from_pem(std::string_view pem,
                                                       std::string& error) noexcept;

    /// The key for `kid`, or nullptr. A PEM set returns its key for any kid (even "").
    /// The pointer lives as long as this set.
    const jwk* find(std::string_view kid) const noexcept;
    std::size_t size() const noexcept { return keys_.size(); }
    /// The kids in document order ("" for a PEM key).
    std::vector<std::string> kids() const;
    /// True for a PEM set.
    bool matches_any_kid() const noexcept { return any_kid_; }

    struct private_tag {};
    jwt_key_set(private_tag, std::vector<jwk> keys, bool any_kid) noexcept
        : keys_(std::move(keys)), any_kid_(any_kid) {}

private:
    std::vector<jwk> keys_;
    bool any_kid_ = false;
};

/// Why a JWT was refused. Values of jwt_verify_result::reason (static storage).
namespace jwt_reason {
inline constexpr std::string_view malformed = "malformed";  ///< shape, base64url, JSON, types
inline constexpr std::string_view alg_not_allowed = "alg_not_allowed";    ///< not RS256/384/512
inline constexpr std::string_view invalid_typ = "invalid_typ";            ///< typ not the kind's
inline constexpr std::string_view invalid_category = "invalid_category";  ///< cat: another kind
inline constexpr std::string_view unknown_kid = "unknown_kid";    ///< caller may re-fetch JWKS
inline constexpr std::string_view alg_mismatch = "alg_mismatch";  ///< JWK alg != token alg
inline constexpr std::string_view bad_signature = "bad_signature";
inline constexpr std::string_view not_m2m = "not_m2m";  ///< M2M: sub is not a "mch_..." string
inline constexpr std::string_view invalid_subject = "invalid_subject";  ///< sub not a string
inline constexpr std::string_view session_pending = "session_pending";  ///< session sts pending
inline constexpr std::string_view missing_exp = "missing_exp";  ///< exp absent or not a number
inline constexpr std::string_view expired = "expired";
inline constexpr std::string_view not_yet_valid = "not_yet_valid";        ///< nbf in the future
inline constexpr std::string_view issued_in_future = "issued_in_future";  ///< iat in the future
}  // namespace jwt_reason

struct jwt_verify_result {
    bool ok = false;
    std::string_view reason;             ///< "" when ok, else one of jwt_reason (static storage)
    std::string kid;                     ///< the header kid once the header parsed ("" if absent)
    std::shared_ptr<const identity> id;  ///< set iff ok
};

/// Verifies a JWT of the kind `kind` (its classification: m2m_token, oauth_token or
/// session_token; api_key is always `malformed`). Never throws, whatever the input.
///
/// Order: shape (three '.'-separated parts, header and payload non-empty) -> header
/// (base64url, strict JSON object) -> `alg` -> `typ` -> `cat` -> `kid` lookup -> JWK `alg`
/// pin -> signature over "header.payload" -> payload (base64url, strict JSON object) -> the
/// kind's claims -> `exp` -> `nbf` -> `iat` -> identity. The signature is checked before any
/// claim is read, so the payload JSON parser only ever sees signed bytes. An empty signature
/// part is `malformed`, but only after the header checks, so `alg:none` reports
/// `alg_not_allowed`. Strict JSON means: no duplicate member names, nesting at most 64 deep,
/// valid UTF-8. A header `crit` (RFC 7515 §4.1.11) is `malformed`; key-carrying header
/// parameters (jku, jwk, x5u, x5c) are ignored: keys come only from the key set.
///
/// Header per kind: `typ` absent or "JWT" (M2M, session), "at+jwt" or "application/at+jwt"
/// (OAuth); `cat` absent or cl_B7d4PD333AAA (M2M), absent or cl_B7d4PD111AAA (session), absent
/// or any category but those two (OAuth).
///
/// Time rules, `skew` = clock_skew: expired iff exp*1000 <= now - skew; not_yet_valid iff
/// nbf*1000 > now + skew; issued_in_future iff iat*1000 > now + skew. `exp` absent or not a
/// number -> missing_exp; `nbf`/`iat` present but not a number -> malformed.
///
/// Identity, all kinds: type = kind, format jwt, expires_at_ms = exp*1000; `claims` = the
/// payload minus the claims carried by identity fields (listed below per kind), or null when
/// nothing remains; claims_compact = compact_ascii_json(claims) or "". A string member of the
/// wrong type (jti, sid, azp, org_id, o.id, sts, scope) is `malformed`.
/// - M2M (docs/clerk-protocol.md §4.3): sub must be "mch_..." (else not_m2m); token_id = jti ("" if
///   absent/null); scopes = the space-separated `scopes` string (empty items dropped), else
///   `aud`, else []; audience = `aud` (a string or an array of strings; [] when absent or null;
///   any other shape, mixed arrays included, is `malformed`). Dropped from claims: iss, sub,
///   aud, exp, nbf, iat, jti, scopes (deliberately unlike the SDK's toAuth(), which keeps aud
///   and scopes: those already reach the upstream as scopes).
/// - OAuth (§4.4): sub a non-empty string (else invalid_subject); token_id = jti; scopes =
///   `scp` (array of strings or space-separated string), else split(`scope`), else [];
///   audience = `aud` as for M2M. Dropped: iss, sub, aud, exp, nbf, iat, jti, scp, scope
///   (client_id stays in claims).
/// - Session (§4.5): sub a non-empty string, not "mch_..." (else invalid_subject); `sts` "pending"
/// ->
///   session_pending (the SDK's default treatPendingAsSignedOut); token_id = sid;
///   authorized_party = azp ("" when absent); org_id = `o.id` when `v` is 2, else `org_id`;
///   audience nullopt (sessions are scoped by auth.authorized_parties, not auth.audience).
///   Dropped: iss, sub, aud, exp, nbf, iat, jti, azp, sid, sts, fva, v (organization claims
///   and custom session claims stay).
jwt_verify_result verify_jwt(std::string_view token, token_type kind, const jwt_key_set& keys,
                             sys_time now, std::chrono::milliseconds clock_skew) noexcept;

/// verify_jwt for an M2M JWT.
inline jwt_verify_result verify_m2m_jwt(std::string_view token, const jwt_key_set& keys,
                                        sys_time now,
                                        std::chrono::milliseconds clock_skew) noexcept {
    return verify_jwt(token, token_type::m2m_token, keys, now, clock_skew);
}

}  // namespace clerk::core
