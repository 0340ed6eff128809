#pragma once
// Decisions are values; problem.hpp maps them to HTTP in one table (docs/reference.md §6).
#include <string_view>

namespace clerk::core {

enum class decision_kind {
    allow,
    missing_token,         // 401
    invalid_request,       // 401
    invalid_token,         // 401 (reason: malformed, not_found, revoked, expired, bad_signature,
                           //      token_type_not_accepted, ...)
    insufficient_scope,    // 403
    auth_unavailable,      // 503
    upstream_unavailable,  // 502
    upstream_timeout,      // 504
    bad_request,           // 400
    headers_too_large,     // 431
    body_too_large,        // 413
};

struct auth_decision {
    decision_kind kind = decision_kind::allow;
    std::string_view reason;  ///< static string; "" when there is none

    bool allowed() const { return kind == decision_kind::allow; }
};

}  // namespace clerk::core
