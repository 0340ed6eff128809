#include "core/policy.hpp"

#include <algorithm>

namespace clerk::core {

bool policy_allows(const route* r, const identity& id) {
    if (r == nullptr) {
        return true;  // no rule matched: authentication is required, but there is no policy
    }
    // require_scopes is all-of. Lists are short (a handful of scopes), so a linear scan beats
    // building a set on every request.
    for (const std::string& need : r->require_scopes) {
        if (std::find(id.who->scopes.begin(), id.who->scopes.end(), need) == id.who->scopes.end()) {
            return false;
        }
    }
    if (!r->allow_subjects.empty() && std::find(r->allow_subjects.begin(), r->allow_subjects.end(),
                                                id.who->subject) == r->allow_subjects.end()) {
        return false;
    }
    return true;
}

}  // namespace clerk::core
