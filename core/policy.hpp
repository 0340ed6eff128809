#pragma once
// Route policy (docs/reference.md §3 require_scopes / allow_subjects), evaluated on every request.
#include "core/identity.hpp"
#include "core/route.hpp"

namespace clerk::core {

/// True when every scope in `r.require_scopes` is in `id.scopes` and, if `r.allow_subjects`
/// is not empty, `id.subject` is one of them. A null route (no match) has no policy: true.
bool policy_allows(const route* r, const identity& id);

}  // namespace clerk::core
