#pragma once
// docs/reference.md §6 as data: the one place that turns a decision into status, body and headers.
#include "core/auth_decision.hpp"

#include <string>
#include <string_view>

namespace clerk::core {

struct problem_spec {
    int status = 500;
    std::string_view error;             ///< body "error"
    std::string_view www_authenticate;  ///< "" when none
    std::string_view retry_after;       ///< "" when none
};

/// The §6 row for a refusal. `allow` is not a problem (returns status 200, empty error).
problem_spec problem_for(decision_kind kind);

/// `{"error":"…","reason":"…","request_id":"…"}` ("reason" omitted when empty), compact JSON,
/// strings escaped. Never contains a token: callers pass only static reasons.
std::string problem_body(decision_kind kind, std::string_view reason, std::string_view request_id);

}  // namespace clerk::core
