#pragma once
// Tests build identities field by field; a principal is shared and immutable, so this gives a
// test a private, writable copy of an identity's principal.
#include "core/identity.hpp"

#include <memory>

namespace clerk::testing {

/// `id`'s principal, copied so that writing to it changes only `id`. The reference stays valid
/// until the next edit() of the same identity.
inline core::principal& edit(core::identity& id) {
    auto copy = std::make_shared<core::principal>(*id.who);
    core::principal& p = *copy;
    id.who = std::move(copy);
    return p;
}

}  // namespace clerk::testing
