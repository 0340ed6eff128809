#include "core/jwt.hpp"

#include "core/base64url.hpp"
#include "core/jwt_claims.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace clerk::core {
namespace {

using nlohmann::json;

// Real headers and claims are a few levels deep; deeper input is hostile (nlohmann's copy and
// dump recurse per level).
constexpr std::size_t max_json_depth = 64;

using jwt_detail::member;

// Header `cat` (token category) values Clerk writes.
constexpr std::string_view m2m_category = "cl_B7d4PD333AAA";
constexpr std::string_view session_category = "cl_B7d4PD111AAA";

bool is_string(const json* v, std::string_view s) {
    return v != nullptr && v->is_string() && v->get_ref<const std::string&>() == s;
}

// Header `typ`: an OAuth access token must say so (RFC 9068); the others are absent or "JWT".
bool typ_allowed(const json* typ, token_type kind) {
    if (kind == token_type::oauth_token) {
        return is_string(typ, "at+jwt") || is_string(typ, "application/at+jwt");
    }
    return typ == nullptr || is_string(typ, "JWT");
}

// Header `cat`: absent, or the category of the expected kind. OAuth access tokens are told
// apart by `typ` (the SDK checks no category for them): any category but another kind's.
bool category_allowed(const json* cat, token_type kind) {
    if (cat == nullptr) {
        return true;
    }
    switch (kind) {
        case token_type::m2m_token:
            return is_string(cat, m2m_category);
        case token_type::session_token:
            return is_string(cat, session_category);
        default:
            return cat->is_string() && !is_string(cat, m2m_category) &&
                   !is_string(cat, session_category);
    }
}

// Parses `text` as one JSON object. Refuses anything else, duplicate member names (which
// parsers resolve differently, a classic JWT smuggling vector), nesting deeper than
// max_json_depth, and invalid UTF-8 (nlohmann's lexer). No exceptions for bad input.
std::optional<json> parse_strict_object(std::string_view text) {
    std::vector<std::set<std::string, std::less<>>> open_objects;
    std::size_t depth = 0;
    bool refused = false;
    const json::parser_callback_t watch = [&](int, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
                open_objects.emplace_back();
                refused = refused || ++depth > max_json_depth;
                break;
            case json::parse_event_t::array_start:
                refused = refused || ++depth > max_json_depth;
                break;
            case json::parse_event_t::object_end:
                if (!open_objects.empty()) {
                    open_objects.pop_back();
                }
                --depth;
                break;
            case json::parse_event_t::array_end:
                --depth;
                break;
            case json::parse_event_t::key:
                if (const auto* name = parsed.get_ptr<const std::string*>();
                    name != nullptr && !open_objects.empty() &&
                    !open_objects.back().insert(*name).second) {
                    refused = true;
                }
                break;
            case json::parse_event_t::value:
                break;
        }
        return true;
    };
    json j = json::parse(text.begin(), text.end(), watch, /*allow_exceptions=*/false);
    if (refused || j.is_discarded() || !j.is_object()) {
        return std::nullopt;
    }
    return j;
}

std::optional<json> decode_object(std::string_view segment) {
    const auto bytes = base64url_decode(segment);
    if (!bytes) {
        return std::nullopt;
    }
    return parse_strict_object(*bytes);
}

std::optional<double> finite_number(const json& v) {
    if (!v.is_number()) {
        return std::nullopt;
    }
    const double d = v.get<double>();
    return std::isfinite(d) ? std::optional<double>(d) : std::nullopt;
}

jwt_verify_result refuse(jwt_verify_result r, std::string_view reason) {
    r.ok = false;
    r.reason = reason;
    r.id.reset();
    return r;
}

long long to_ms(double seconds) {
    const double ms = std::floor(seconds * 1000.0);
    constexpr auto max = std::numeric_limits<long long>::max();
    constexpr auto min = std::numeric_limits<long long>::min();
    if (ms >= static_cast<double>(max)) {
        return max;
    }
    return ms <= static_cast<double>(min) ? min : static_cast<long long>(ms);
}

jwt_verify_result verify(std::string_view token, token_type kind, const jwt_key_set& keys,
                         sys_time now, std::chrono::milliseconds clock_skew) {
    jwt_verify_result r;
    if (kind == token_type::api_key) {
        return refuse(std::move(r), jwt_reason::malformed);  // API keys have no JWT form
    }

    // --- Shape: exactly three parts.
    const auto dot1 = token.find('.');
    const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
        return refuse(std::move(r), jwt_reason::malformed);
    }
    const auto h64 = token.substr(0, dot1);
    const auto p64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
    const auto s64 = token.substr(dot2 + 1);
    if (h64.empty() || p64.empty()) {
        return refuse(std::move(r), jwt_reason::malformed);
    }

    // --- Header: cheap checks that refuse without touching a key.
    const auto header = decode_object(h64);
    if (!header) {
        return refuse(std::move(r), jwt_reason::malformed);
    }
    const json* alg = member(*header, "alg");
    if (alg == nullptr || !alg->is_string() ||
        !is_allowed_jwt_alg(alg->get_ref<const std::string&>())) {
        return refuse(std::move(r), jwt_reason::alg_not_allowed);
    }
    const auto& alg_name = alg->get_ref<const std::string&>();
    if (!typ_allowed(member(*header, "typ"), kind)) {
        return refuse(std::move(r), jwt_reason::invalid_typ);
    }
    if (!category_allowed(member(*header, "cat"), kind)) {
        return refuse(std::move(r), jwt_reason::invalid_category);
    }
    // RFC 7515 §4.1.11: `crit` lists extensions the recipient must understand; we know none.
    // Key-carrying parameters (jku, jwk, x5u, x5c) are ignored: keys come only from config.
    if (member(*header, "crit") != nullptr) {
        return refuse(std::move(r), jwt_reason::malformed);
    }
    if (const json* kid = member(*header, "kid")) {
        if (!kid->is_string()) {
            return refuse(std::move(r), jwt_reason::malformed);
        }
        r.kid = kid->get<std::string>();
    }

    // --- Key and signature: nothing below this block reads unsigned data.
    const jwk* key = keys.find(r.kid);
    if (key == nullptr) {
        return refuse(std::move(r), jwt_reason::unknown_kid);
    }
    if (!key->alg().empty() && key->alg() != alg_name) {
        return refuse(std::move(r), jwt_reason::alg_mismatch);
    }
    const auto signature = base64url_decode(s64);
    if (s64.empty() || !signature) {
        return refuse(std::move(r), jwt_reason::malformed);
    }
    if (!key->verify(alg_name, token.substr(0, dot2), *signature)) {
        return refuse(std::move(r), jwt_reason::bad_signature);
    }

    // --- Claims (signed).
    const auto payload = decode_object(p64);
    if (!payload) {
        return refuse(std::move(r), jwt_reason::malformed);
    }
    auto id = std::make_shared<identity>();
    principal who;
    if (const auto refused = jwt_detail::map_claims(*payload, kind, *id, who); !refused.empty()) {
        return refuse(std::move(r), refused);
    }
    const json* exp_claim = member(*payload, "exp");
    if (exp_claim == nullptr || !exp_claim->is_number()) {
        return refuse(std::move(r), jwt_reason::missing_exp);
    }
    const auto exp = finite_number(*exp_claim);
    if (!exp) {
        return refuse(std::move(r), jwt_reason::malformed);
    }
    const auto now_ms = static_cast<double>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
    const auto skew_ms = static_cast<double>(clock_skew.count());
    if (*exp * 1000.0 <= now_ms - skew_ms) {
        return refuse(std::move(r), jwt_reason::expired);
    }
    struct time_claim {
        const char* name;
        std::string_view reason;
    };
    for (const auto& [name, reason] : {time_claim{"nbf", jwt_reason::not_yet_valid},
                                       time_claim{"iat", jwt_reason::issued_in_future}}) {
        if (const json* claim = member(*payload, name)) {
            const auto t = finite_number(*claim);
            if (!t) {
                return refuse(std::move(r), jwt_reason::malformed);
            }
            if (*t * 1000.0 > now_ms + skew_ms) {
                return refuse(std::move(r), reason);
            }
        }
    }

    // --- Identity: the fields map_claims does not set.
    id->type = kind;
    id->format = token_format::jwt;
    id->expires_at_ms = to_ms(*exp);
    id->who = std::make_shared<const principal>(std::move(who));

    r.ok = true;
    r.reason = {};
    r.id = std::move(id);
    return r;
}

}  // namespace

std::shared_ptr<const jwt_key_set> jwt_key_set::from_jwks_json(std::string_view json_text,
                                                               std::string& error) noexcept {
    try {
        const auto doc = parse_strict_object(json_text);
        if (!doc) {
            error = "invalid JSON";
            return nullptr;
        }
        const json* list = member(*doc, "keys");
        if (list == nullptr || !list->is_array()) {
            error = "JWKS is not an object with a keys array";
            return nullptr;
        }
        std::vector<jwk> keys;
        std::string skipped;  // why an entry was unusable; not reported (skipping is normal)
        for (const auto& entry : *list) {
            if (auto k = jwk::from_json(entry, skipped)) {
                keys.push_back(std::move(*k));
            }
        }
        if (keys.empty()) {
            error = "no signing keys";
            return nullptr;
        }
        return std::make_shared<const jwt_key_set>(private_tag{}, std::move(keys), false);
    } catch (...) {
        error = "out of memory";
        return nullptr;
    }
}

std::shared_ptr<const jwt_key_set> jwt_key_set::from_pem(std::string_view pem,
                                                         std::string& error) noexcept {
    try {
        auto k = jwk::from_pem(pem, error);
        if (!k) {
            return nullptr;
        }
        std::vector<jwk> keys;
        keys.push_back(std::move(*k));
        return std::make_shared<const jwt_key_set>(private_tag{}, std::move(keys), true);
    } catch (...) {
        error = "out of memory";
        return nullptr;
    }
}

const jwk* jwt_key_set::find(std::string_view kid) const noexcept {
    if (any_kid_) {
        return keys_.empty() ? nullptr : &keys_.front();
    }
    for (const auto& k : keys_) {
        if (k.kid() == kid) {
            return &k;
        }
    }
    return nullptr;
}

std::vector<std::string> jwt_key_set::kids() const {
    std::vector<std::string> out;
    out.reserve(keys_.size());
    for (const auto& k : keys_) {
        out.push_back(k.kid());
    }
    return out;
}

jwt_verify_result verify_jwt(std::string_view token, token_type kind, const jwt_key_set& keys,
                             sys_time now, std::chrono::milliseconds clock_skew) noexcept {
    try {
        return verify(token, kind, keys, now, clock_skew);
    } catch (...) {
        // Only allocation failure can get here: refuse rather than let it escape.
        jwt_verify_result r;
        r.reason = jwt_reason::malformed;
        return r;
    }
}

}  // namespace clerk::core
