#include "core/identity.hpp"

#include <cstddef>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

namespace clerk::core {
namespace {

// nlohmann's dump() recurses once per nesting level, so a hostile, deeply nested claims value
// could exhaust the stack. Real claims are a few levels deep; anything beyond this is refused.
constexpr std::size_t max_depth = 64;

// Iterative (explicit stack) so that the check itself cannot overflow.
bool nesting_within_limit(const nlohmann::json& root) {
    std::vector<std::pair<const nlohmann::json*, std::size_t>> todo{{&root, 1}};
    while (!todo.empty()) {
        auto [node, depth] = todo.back();
        todo.pop_back();
        if (!node->is_structured()) {
            continue;
        }
        if (depth > max_depth) {
            return false;
        }
        for (const auto& child : *node) {
            if (child.is_structured()) {
                todo.emplace_back(&child, depth + 1);
            }
        }
    }
    return true;
}

}  // namespace

std::string compact_ascii_json(const nlohmann::json& j) {
    // Why these dump() arguments: indent -1 is compact; ensure_ascii escapes every non-ASCII
    // code point (and control characters are always escaped), so the result is header-safe;
    // error_handler::replace turns invalid UTF-8 into U+FFFD instead of throwing.
    try {
        if (!nesting_within_limit(j)) {
            return {};
        }
        return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    } catch (...) {
        // Only allocation failure can get here; an empty rendering means "no claims header".
        return {};
    }
}

std::shared_ptr<const principal> identity::empty_principal() {
    static const auto empty = std::make_shared<const principal>();
    return empty;
}

std::size_t principal_hash::operator()(const principal& p) const noexcept {
    // Hashes what tells principals apart in practice; operator== compares every field.
    std::size_t h = std::hash<std::string>{}(p.subject);
    const auto mix = [&h](std::string_view v) {
        h ^= std::hash<std::string_view>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    };
    mix(p.org_id);
    mix(p.claims_compact);
    for (const auto& s : p.scopes) {
        mix(s);
    }
    if (p.audience) {
        for (const auto& a : *p.audience) {
            mix(a);
        }
    }
    if (p.authorized_party) {
        mix(*p.authorized_party);
    }
    return h;
}

bool audience_allows(const identity& id, const std::vector<std::string>& accepted) noexcept {
    const auto& audience = id.who->audience;
    if (accepted.empty() || !audience) {
        return true;
    }
    for (const auto& aud : *audience) {
        for (const auto& want : accepted) {
            if (aud == want) {
                return true;
            }
        }
    }
    return false;
}

bool authorized_party_allows(const identity& id,
                             const std::vector<std::string>& accepted) noexcept {
    const auto& azp = id.who->authorized_party;
    if (accepted.empty() || !azp) {
        return true;
    }
    for (const auto& want : accepted) {
        if (*azp == want) {
            return !want.empty();
        }
    }
    return false;
}

}  // namespace clerk::core
