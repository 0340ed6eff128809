#pragma once
// The pure part of a request's auth: route, token extraction, classification, acceptance
// (before any verification), and the policy check after it.
#include "core/auth_decision.hpp"
#include "core/bearer_token.hpp"
#include "core/identity.hpp"
#include "core/route.hpp"

#include <span>
#include <string_view>
#include <vector>

namespace clerk::core {

/// auth.accepts_token: a list of types, or "any".
struct token_acceptance {
    bool any = false;
    std::vector<token_type> types{token_type::m2m_token};
    bool accepts(token_type t) const;
};

struct pre_auth {
    const route* matched = nullptr;  ///< nullptr: no rule matched (auth required, no policy)
    bool needs_verification =
        false;               ///< true: verify `token` (of class `cls`), then call post_auth
    auth_decision decision;  ///< when !needs_verification: allow (auth: none) or a refusal
    std::string_view token;  ///< views into the Authorization header value
    token_class cls;
};

/// True when `normalized_path` holds a ';' and reading it the way Servlet containers do (drop each
/// segment's ";parameters", then resolve dot segments: "/public/..;/admin" is "/admin" to them)
/// escapes the root or selects another route rule than the path itself does. Which rule applies
/// must not depend on how the upstream parses "..;" or "admin;x=1": the session refuses such a
/// path with 400 (`ambiguous_path`) before pre_authenticate.
bool path_parameters_ambiguous(std::span<const route> routes, std::string_view method,
                               std::string_view normalized_path);

/// `authorization` holds every Authorization header value. Never calls out; no allocation of the
/// token. Order: route (auth: none -> allow), bearer extraction, classification, acceptance.
/// With `classify` false the last two steps are left to the caller (classify_and_accept): the
/// proxy looks the token up in its cache first, so that a cached token — a JWT especially, whose
/// classification decodes and parses its header and payload — costs no parsing at all; `cls` is
/// then unset and the decision stays a refusal until verification.
pre_auth pre_authenticate(std::span<const route> routes, const token_acceptance& accepts,
                          std::string_view method, std::string_view normalized_path,
                          std::span<const std::string_view> authorization, bool classify = true);

/// Steps 3 and 4 of pre_authenticate: the token's class, or why it is refused (invalid_token
/// `malformed`, or `token_type_not_accepted` — then `cls` is set).
struct classification_result {
    bool ok = false;
    bool classified = false;  ///< cls is meaningful (ok, or refused as not accepted)
    auth_decision refusal;
    token_class cls;
};
classification_result classify_and_accept(std::string_view token, const token_acceptance& accepts);

/// After a successful verification: the route policy. allow or insufficient_scope.
auth_decision post_authenticate(const route* matched, const identity& id);

}  // namespace clerk::core
