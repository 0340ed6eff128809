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

/// `authorization` holds every Authorization header value. Never calls out; no allocation of the
/// token. Order: route (auth: none -> allow), bearer extraction, classification, acceptance.
pre_auth pre_authenticate(std::span<const route> routes, const token_acceptance& accepts,
                          std::string_view method, std::string_view normalized_path,
                          std::span<const std::string_view> authorization);

/// After a successful verification: the route policy. allow or insufficient_scope.
auth_decision post_authenticate(const route* matched, const identity& id);

}  // namespace clerk::core
