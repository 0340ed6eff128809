#include "core/request_decision.hpp"

#include "core/path_normalizer.hpp"
#include "core/policy.hpp"

#include <algorithm>
#include <string>

namespace clerk::core {
namespace {

/// `path` with every segment's ";parameters" removed ("/a;x=1/..;/b" -> "/a/../b").
std::string strip_path_parameters(std::string_view path) {
    std::string out;
    out.reserve(path.size());
    bool in_params = false;
    for (const char c : path) {
        if (c == '/') {
            in_params = false;
        } else if (c == ';') {
            in_params = true;
        }
        if (!in_params) {
            out.push_back(c);
        }
    }
    return out;
}

}  // namespace

bool path_parameters_ambiguous(std::span<const route> routes, std::string_view method,
                               std::string_view normalized_path) {
    if (normalized_path.find(';') == std::string_view::npos) {
        return false;
    }
    // The reading of Servlet containers (Tomcat, Jetty, Undertow; Spring on top of them): the
    // parameters go first, then dot segments resolve. Percent-escapes are already normalized,
    // and %3B stays escaped, so only a raw ';' can start parameters in either reading.
    const auto servlet = normalize_target(strip_path_parameters(normalized_path));
    return servlet.status != path_status::ok || match_route(routes, method, servlet.path) !=
                                                    match_route(routes, method, normalized_path);
}

bool token_acceptance::accepts(token_type t) const {
    return any || std::find(types.begin(), types.end(), t) != types.end();
}

pre_auth pre_authenticate(std::span<const route> routes, const token_acceptance& accepts,
                          std::string_view method, std::string_view normalized_path,
                          std::span<const std::string_view> authorization, bool classify) {
    pre_auth out;

    // 1. Route. `auth: none` allows without looking at the Authorization header at all.
    out.matched = match_route(routes, method, normalized_path);
    if (out.matched != nullptr && out.matched->auth == auth_mode::none) {
        out.decision = {decision_kind::allow, ""};
        return out;
    }

    // 2. Bearer extraction.
    const bearer_result bearer = extract_bearer(authorization);
    switch (bearer.status) {
        case bearer_status::ok:
            break;
        case bearer_status::missing:
            out.decision = {decision_kind::missing_token, ""};
            return out;
        case bearer_status::invalid_request:
            out.decision = {decision_kind::invalid_request, ""};
            return out;
    }

    // 3. and 4., unless the caller classifies after its cache lookup.
    if (classify) {
        const classification_result c = classify_and_accept(bearer.token, accepts);
        if (!c.ok) {
            out.decision = c.refusal;
            return out;
        }
        out.cls = c.cls;
    }

    // Fail closed: while verification is pending the decision is a refusal, so a caller that
    // forgets to check `needs_verification` never forwards an unverified request.
    out.needs_verification = true;
    out.decision = {decision_kind::invalid_token, "not_verified"};
    out.token = bearer.token;
    return out;
}

classification_result classify_and_accept(std::string_view token, const token_acceptance& accepts) {
    classification_result out;
    // 3. Classification (no signature, no network).
    const classification c = classify_token(token);
    if (c.status != classify_status::ok) {
        out.refusal = {decision_kind::invalid_token, "malformed"};
        return out;
    }
    out.classified = true;
    out.cls = c.cls;
    // 4. Acceptance: a type the config does not accept is refused without any call to Clerk.
    if (!accepts.accepts(c.cls.type)) {
        out.refusal = {decision_kind::invalid_token, "token_type_not_accepted"};
        return out;
    }
    out.ok = true;
    return out;
}

auth_decision post_authenticate(const route* matched, const identity& id) {
    if (policy_allows(matched, id)) {
        return {decision_kind::allow, ""};
    }
    // Say which half of the policy failed; both reasons are static and name no scope or subject.
    const bool scopes_ok = std::all_of(
        matched->require_scopes.begin(), matched->require_scopes.end(), [&](const auto& s) {
            return std::find(id.who->scopes.begin(), id.who->scopes.end(), s) !=
                   id.who->scopes.end();
        });
    return {decision_kind::insufficient_scope, scopes_ok ? "subject_not_allowed" : "missing_scope"};
}

}  // namespace clerk::core
