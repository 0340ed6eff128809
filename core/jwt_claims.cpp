#include "core/jwt_claims.hpp"

#include "core/jwt.hpp"

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace clerk::core::jwt_detail {
namespace {

using nlohmann::json;

// `aud` (RFC 7519 §4.1.3): a string or an array of strings. False for any other shape (an
// array holding a non-string included): such a token is malformed, whatever is configured.
bool read_audience(const json& aud, std::vector<std::string>& out) {
    if (aud.is_string()) {
        out.push_back(aud.get<std::string>());
        return true;
    }
    if (!aud.is_array()) {
        return false;
    }
    for (const auto& item : aud) {
        if (!item.is_string()) {
            return false;
        }
    }
    for (const auto& item : aud) {
        out.push_back(item.get<std::string>());
    }
    return true;
}

void split_spaces(const std::string& s, std::vector<std::string>& out) {
    std::size_t pos = 0;
    while (pos <= s.size()) {
        const auto space = std::min(s.find(' ', pos), s.size());
        if (space > pos) {
            out.emplace_back(s.substr(pos, space - pos));
        }
        pos = space + 1;
    }
}

// A space-separated string, or (OAuth's `scp`) an array of strings. False for other shapes.
bool read_scope_list(const json& v, std::vector<std::string>& out) {
    if (v.is_string()) {
        split_spaces(v.get_ref<const std::string&>(), out);
        return true;
    }
    return v.is_array() && read_audience(v, out);
}

// An optional string member: true if absent/null or a string (copied into `out`).
bool optional_string(const json& payload, const char* name, std::string& out) {
    const json* v = present(payload, name);
    if (v == nullptr) {
        return true;
    }
    if (!v->is_string()) {
        return false;
    }
    out = v->get<std::string>();
    return true;
}

// claims = the payload minus `dropped`, or null when nothing remains.
void set_claims(const json& payload, std::initializer_list<const char*> dropped, principal& who) {
    json claims = payload;
    for (const char* name : dropped) {
        claims.erase(name);
    }
    if (!claims.empty()) {
        who.claims_compact = compact_ascii_json(claims);
        who.claims = std::move(claims);
    }
}

// A session token's active organization: `o.id` with claims version 2, `org_id` before.
bool read_session_org(const json& payload, std::string& org_id) {
    const json* version = present(payload, "v");
    if (version != nullptr && version->is_number() && version->get<double>() == 2.0) {
        const json* o = present(payload, "o");
        if (o == nullptr) {
            return true;
        }
        return o->is_object() && optional_string(*o, "id", org_id);
    }
    return optional_string(payload, "org_id", org_id);
}

// token_id = `jti` ("" when absent), audience = `aud` for recipient scoping (auth.audience;
// absent or null is an empty audience). False when either has the wrong shape.
bool read_id_and_audience(const json& payload, identity& out, principal& who) {
    if (!optional_string(payload, "jti", out.token_id)) {
        return false;
    }
    who.audience.emplace();
    const json* aud = present(payload, "aud");
    return aud == nullptr || read_audience(*aud, *who.audience);
}

std::string_view map_m2m(const json& payload, identity& out, principal& who) {
    const json* sub = member(payload, "sub");
    if (sub == nullptr || !sub->is_string() ||
        !sub->get_ref<const std::string&>().starts_with("mch_")) {
        return jwt_reason::not_m2m;
    }
    who.subject = sub->get<std::string>();
    if (!read_id_and_audience(payload, out, who)) {
        return jwt_reason::malformed;
    }
    // scopes = split(`scopes`), else `aud`, else [].
    if (const json* scopes = present(payload, "scopes")) {
        if (!scopes->is_string()) {
            return jwt_reason::malformed;
        }
        split_spaces(scopes->get_ref<const std::string&>(), who.scopes);
    } else {
        who.scopes = *who.audience;
    }
    set_claims(payload, {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scopes"}, who);
    return {};
}

std::string_view read_subject(const json& payload, principal& who) {
    const json* sub = member(payload, "sub");
    if (sub == nullptr || !sub->is_string() || sub->get_ref<const std::string&>().empty()) {
        return jwt_reason::invalid_subject;
    }
    who.subject = sub->get<std::string>();
    return {};
}

std::string_view map_oauth(const json& payload, identity& out, principal& who) {
    if (auto r = read_subject(payload, who); !r.empty()) {
        return r;
    }
    if (!read_id_and_audience(payload, out, who)) {
        return jwt_reason::malformed;
    }
    // scopes = `scp` ?? split(`scope`) ?? [] (the SDK's IdPOAuthAccessToken.fromJwtPayload).
    if (const json* scp = present(payload, "scp")) {
        if (!read_scope_list(*scp, who.scopes)) {
            return jwt_reason::malformed;
        }
    } else if (const json* scope = present(payload, "scope")) {
        if (!scope->is_string()) {
            return jwt_reason::malformed;
        }
        split_spaces(scope->get_ref<const std::string&>(), who.scopes);
    }
    set_claims(payload, {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scp", "scope"}, who);
    return {};
}

std::string_view map_session(const json& payload, identity& out, principal& who) {
    if (auto r = read_subject(payload, who); !r.empty()) {
        return r;
    }
    // A machine's token is never a session (classification sends it to the M2M rules).
    if (who.subject.starts_with("mch_")) {
        return jwt_reason::invalid_subject;
    }
    // A pending session (unfinished session tasks) is signed out for the SDK by default
    // (treatPendingAsSignedOut): refused here.
    if (const json* sts = present(payload, "sts")) {
        if (!sts->is_string()) {
            return jwt_reason::malformed;
        }
        if (sts->get_ref<const std::string&>() == "pending") {
            return jwt_reason::session_pending;
        }
    }
    who.authorized_party.emplace();
    if (!optional_string(payload, "sid", out.token_id) ||
        !optional_string(payload, "azp", *who.authorized_party) ||
        !read_session_org(payload, who.org_id)) {
        return jwt_reason::malformed;
    }
    // Session bookkeeping is dropped; custom session claims and the organization's role,
    // slug and permissions stay (the upstream may authorize on them).
    set_claims(payload,
               {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "azp", "sid", "sts", "fva", "v"},
               who);
    return {};
}

}  // namespace

const json* member(const json& obj, const char* name) {
    const auto it = obj.find(name);
    return it == obj.end() ? nullptr : &*it;
}

const json* present(const json& obj, const char* name) {
    const json* v = member(obj, name);
    return v == nullptr || v->is_null() ? nullptr : v;
}

std::string_view map_claims(const json& payload, token_type kind, identity& out, principal& who) {
    switch (kind) {
        case token_type::m2m_token:
            return map_m2m(payload, out, who);
        case token_type::oauth_token:
            return map_oauth(payload, out, who);
        case token_type::session_token:
            return map_session(payload, out, who);
        case token_type::api_key:
            break;
    }
    return jwt_reason::malformed;  // API keys have no JWT form
}

}  // namespace clerk::core::jwt_detail
