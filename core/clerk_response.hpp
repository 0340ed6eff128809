#pragma once
// Maps one Clerk BAPI response to a verification outcome (docs/reference.md §4). Pure: no Asio, no
// sockets, no clock (`now` is a parameter), so it is unit-tested and fuzzed as a function.
#include "core/clock.hpp"
#include "core/identity.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

namespace clerk::core {

enum class clerk_outcome_kind {
    valid,         ///< 200 with a live, well-formed token: `id` is set
    invalid,       ///< definitive rejection (404/400/422, or a 200 revoked/expired): cache it
    key_rejected,  ///< 401/403: our own secret key is wrong; 503, nothing cached, no retry
    rate_limited,  ///< 429: retry after `retry_after` (when present) if it fits the deadline
    retryable,     ///< 5xx, malformed 200, transport failure: jittered backoff, then stale/503
    unexpected,    ///< any other status (e.g. 405, 409): 503 without retry, never accepted
};

struct clerk_outcome {
    clerk_outcome_kind kind = clerk_outcome_kind::retryable;
    /// Static string. invalid: not_found | invalid | revoked | expired. Other kinds: a short
    /// diagnostic for logs (never a token): "status_5xx", "malformed_response", ...
    std::string_view reason;
    std::shared_ptr<const identity> id;               ///< set iff kind == valid
    std::optional<std::chrono::seconds> retry_after;  ///< rate_limited only, when parseable
};

/// `status` is the HTTP status; `retry_after` the raw Retry-After header value ("" when absent);
/// `body` the raw body (parsed as JSON whatever the Content-Type says); `now` the wall clock.
/// Never throws.
/// `type` is the verified token's type (m2m_token, api_key or oauth_token: their 200 bodies
/// differ in `object` and fields; an OAuth 200 `{"active": false}` is invalid "inactive").
clerk_outcome map_verify_response(int status, std::string_view retry_after, std::string_view body,
                                  sys_time now, token_type type = token_type::m2m_token);

/// Parses the body of a 200 verify response into an identity (object must be
/// "machine_to_machine_token"; `id` and `subject` required strings; `scopes` string array,
/// default []; `claims` object or null; `expiration` number (ms) or null). nullopt when the
/// body is malformed. Revocation and expiry are not checked here.
std::optional<identity> parse_m2m_token(std::string_view body);

/// The same for the other opaque types: api_key (object "api_key"; `subject` user_/org_/mch_)
/// and oauth_token (object "clerk_idp_oauth_access_token"; `aud` string or string array kept as
/// the identity's audience).
std::optional<identity> parse_verified_token(std::string_view body, token_type type);

/// Retry-After as delta-seconds (RFC 9110 §10.2.3). HTTP-dates and garbage give nullopt.
/// Values are capped at one day.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value);

}  // namespace clerk::core
