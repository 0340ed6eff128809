// The M2M token endpoints and JWKS of the emulated BAPI (docs/clerk-protocol.md §3, §4.3, §5, §6).

#include <algorithm>
#include <cmath>

#include "tests/emulator/random_ids.hpp"
#include "tests/emulator/router.hpp"

namespace clerk::emulator {

using nlohmann::json;

namespace {

api_response machine_key_invalid() {
    return error_response(
        401, "machine_secret_key_invalid", "The provided Machine Secret Key is invalid.",
        "The provided Machine Secret Key is invalid. Make sure that your Machine Secret Key is "
        "correct.");
}

api_response not_found() {
    return error_response(404, "resource_not_found", "not found",
                          "The requested resource was not found.");
}

api_response bad_param(std::string_view code, const std::string& name, std::string_view what) {
    return error_response(400, code, std::string(what), name + " " + std::string(what));
}

bool contains(const std::vector<std::string>& list, std::string_view value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

/// "true"/"false" (also 1/0); nullopt for anything else.
std::optional<bool> parse_bool(const std::string& text) {
    if (text == "true" || text == "1") {
        return true;
    }
    if (text == "false" || text == "0") {
        return false;
    }
    return std::nullopt;
}

std::optional<long long> parse_int(const std::string& text) {
    if (text.empty() || text.size() > 18 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    return std::stoll(text);
}

}  // namespace

std::optional<api_response> router::require_m2m_caller(const context& ctx) const {
    if (!ctx.who.valid()) {
        return machine_key_invalid();
    }
    if (!ctx.req.api_version || ctx.req.api_version->empty()) {
        return error_response(400, "clerk_api_version_missing",
                              "Clerk-API-Version header is required",
                              "The m2m_tokens endpoints are versioned by the Clerk-API-Version "
                              "header, e.g. Clerk-API-Version: 2026-05-12.");
    }
    return std::nullopt;
}

api_response router::clerk_api(context& ctx, endpoint ep) {
    switch (ep) {
        case endpoint::create:
            return create(ctx);
        case endpoint::verify:
            return verify(ctx);
        case endpoint::revoke:
            return revoke(ctx);
        case endpoint::list:
            return list(ctx);
        case endpoint::jwks:
            return jwks(ctx);
        case endpoint::machines:
            return machines(ctx);
        case endpoint::unknown:
            break;
    }
    return not_found();
}

api_response router::create(context& ctx) {
    if (auto err = require_m2m_caller(ctx)) {
        return *err;
    }
    if (ctx.who.instance) {  // "Must be authenticated via a Machine Secret Key" (spec:12431)
        return machine_key_invalid();
    }
    json body = json::object();
    if (!ctx.req.body.empty()) {
        if (auto err = parse_object(ctx.req.body, body)) {
            return *err;
        }
    }
    if (auto err = reject_unknown(body, {"seconds_until_expiration", "claims", "token_format",
                                         "min_remaining_ttl_seconds"})) {
        return *err;
    }
    const machine& issuer = *ctx.who.machine_ptr;
    issue_params params{&issuer, body.value("claims", json(nullptr)), std::nullopt, false};

    const json secs = body.value("seconds_until_expiration", json(nullptr));
    // Upper bound (~3000 years) keeps the ms arithmetic far from int64 overflow.
    if (!secs.is_null() &&
        (!secs.is_number() || secs.get<double>() <= 0 || secs.get<double>() > 1e11)) {
        return bad_param("form_param_format_invalid", "seconds_until_expiration",
                         "must be a number greater than 0 (at most 1e11) or null");
    }
    if (!secs.is_null()) {
        params.expiration_ms = ctx.now + std::llround(secs.get<double>() * 1000.0);
    }
    const json format = body.value("token_format", json(nullptr));
    if (!format.is_null() && format != "opaque" && format != "jwt") {
        return bad_param("form_param_value_invalid", "token_format", "must be opaque or jwt");
    }
    params.jwt = format == "jwt";
    if (params.jwt && !params.claims.is_null() && !params.claims.is_object()) {
        return bad_param("form_param_format_invalid", "claims", "must be an object for jwt tokens");
    }

    const json min_ttl = body.value("min_remaining_ttl_seconds", json(nullptr));
    if (!min_ttl.is_null()) {
        if (!min_ttl.is_number_integer() || min_ttl.get<long long>() < 0) {
            return bad_param("form_param_format_invalid", "min_remaining_ttl_seconds",
                             "must be an integer >= 0");
        }
        if (params.jwt) {
            return bad_param("form_param_value_invalid", "min_remaining_ttl_seconds",
                             "is only supported for opaque tokens");
        }
        const double lifetime =
            secs.is_null() ? static_cast<double>(issuer.default_token_ttl) : secs.get<double>();
        if (static_cast<double>(min_ttl.get<long long>()) >= lifetime) {
            return bad_param("form_param_value_invalid", "min_remaining_ttl_seconds",
                             "must be less than the token lifetime");
        }
        const auto min_ms = min_ttl.get<long long>() * 1000;  // < lifetime <= 1e11 s: no overflow
        // Reuse a live token with identical claims and scopes and enough TTL left.
        for (const m2m_token* t : state_.tokens_of(issuer.id)) {
            if (!t->revoked && !t->expired_at(ctx.now) && t->claims == params.claims &&
                t->scopes == issuer.scoped_machines &&
                (!t->expiration || *t->expiration - ctx.now >= min_ms)) {
                return json_response(201, token_json(*t, ctx.now, true));
            }
        }
    }
    return issue(params, ctx.now);
}

api_response router::issue(const issue_params& params, std::int64_t now_ms) {
    const machine& issuer = *params.issuer;
    if (!params.jwt) {
        m2m_token t;
        t.id = new_token_id();
        t.secret = new_token_secret();
        t.subject = issuer.id;
        t.claims = params.claims;
        t.scopes = issuer.scoped_machines;
        t.expiration = params.expiration_ms;
        t.created_at = now_ms;
        t.updated_at = now_ms;
        return json_response(201, token_json(state_.add_token(std::move(t)), now_ms, true));
    }
    // JWT: stateless. A JWT needs an exp, so "never" becomes the machine's default TTL
    // (docs/clerk-protocol.md §9 O5).
    const std::int64_t exp_ms =
        params.expiration_ms.value_or(now_ms + issuer.default_token_ttl * 1000);
    const std::int64_t iat = now_ms / 1000;
    const std::int64_t exp = exp_ms / 1000;
    json payload = params.claims.is_object() ? params.claims : json::object();
    const std::string jti = new_token_id();
    payload["jti"] = jti;
    payload["sub"] = issuer.id;
    payload["aud"] = issuer.scoped_machines;
    payload.erase("scopes");
    if (!issuer.scoped_machines.empty()) {
        std::string scopes;
        for (const auto& id : issuer.scoped_machines) {
            scopes += (scopes.empty() ? "" : " ") + id;
        }
        payload["scopes"] = scopes;
    }
    payload["iat"] = iat;
    payload["nbf"] = iat;
    payload["exp"] = exp;
    state_.remember_jwt_id(jti);
    state_.dirty = true;

    json out = {{"object", "machine_to_machine_token"},
                {"id", jti},
                {"subject", issuer.id},
                {"claims", params.claims},
                {"scopes", issuer.scoped_machines},
                {"revoked", false},
                {"revocation_reason", nullptr},
                {"expired", exp_ms <= now_ms},
                {"expiration", exp * 1000},
                {"last_used_at", nullptr},
                {"created_at", iat * 1000},
                {"updated_at", iat * 1000},
                {"token", signer_.sign(payload)}};
    return json_response(201, out);
}

api_response router::dead_token(const json& token_body, bool revoked) {
    if (state_.revoked_status == 200) {
        return json_response(200, token_body);
    }
    return revoked ? error_response(404, "token_revoked", "Token has been revoked",
                                    "The M2M token has been revoked.")
                   : error_response(404, "token_expired", "Token has expired",
                                    "The M2M token has expired.");
}

api_response router::verify(context& ctx) {
    if (!ctx.path.empty() && ctx.path[0] != "m2m_tokens") {
        return verify_other(ctx);
    }
    if (auto err = require_m2m_caller(ctx)) {
        return *err;
    }
    json body;
    if (auto err = parse_object(ctx.req.body, body)) {
        return *err;
    }
    if (auto err = reject_unknown(body, {"token"})) {
        return *err;
    }
    if (!body.contains("token") || !body["token"].is_string() || body["token"] == "") {
        return bad_param("form_param_missing", "token", "is missing or empty");
    }
    const auto token = body["token"].get<std::string>();
    if (std::count(token.begin(), token.end(), '.') == 2) {
        return verify_jwt(ctx, token);
    }
    m2m_token* t = state_.find_token_by_secret(token);
    // A machine key may verify only tokens scoped to its machine (spec:12984-12992). The status
    // for an out-of-scope token is unknown (docs/clerk-protocol.md §9 O3); we answer as for an
    // unknown token: 404.
    if (t == nullptr ||
        (ctx.who.machine_ptr != nullptr && !contains(t->scopes, ctx.who.machine_ptr->id))) {
        return not_found();
    }
    if (t->revoked || t->expired_at(ctx.now)) {
        return dead_token(token_json(*t, ctx.now, false), t->revoked);
    }
    t->last_used_at = ctx.now;  // not persisted eagerly: verify is the hot path
    return json_response(200, token_json(*t, ctx.now, false));
}

api_response router::verify_jwt(context& ctx, std::string_view jwt) {
    const auto v = signer_.verify(jwt);
    if (!v) {
        return not_found();
    }
    const json& p = v->payload;
    if (!p.contains("sub") || !p["sub"].is_string() ||
        p["sub"].get<std::string>().rfind("mch_", 0) != 0 || !p.contains("exp") ||
        !p["exp"].is_number_integer() || !p.contains("jti") || !p["jti"].is_string()) {
        return not_found();
    }
    std::vector<std::string> scopes;
    if (p.contains("aud") && p["aud"].is_array()) {
        for (const auto& a : p["aud"]) {
            if (a.is_string()) {
                scopes.push_back(a.get<std::string>());
            }
        }
    } else if (p.contains("aud") && p["aud"].is_string()) {
        scopes.push_back(p["aud"].get<std::string>());
    }
    if (ctx.who.machine_ptr != nullptr && !contains(scopes, ctx.who.machine_ptr->id)) {
        return not_found();
    }
    json claims = p;
    for (const char* registered : {"iss", "sub", "exp", "nbf", "iat", "jti", "aud", "scopes"}) {
        claims.erase(registered);
    }
    const std::int64_t exp_ms = p["exp"].get<std::int64_t>() * 1000;
    const std::int64_t iat_ms =
        p.contains("iat") && p["iat"].is_number_integer() ? p["iat"].get<std::int64_t>() * 1000 : 0;
    json out = {{"object", "machine_to_machine_token"},
                {"id", p["jti"]},
                {"subject", p["sub"]},
                {"claims", claims.empty() ? json(nullptr) : claims},
                {"scopes", scopes},
                {"revoked", false},
                {"revocation_reason", nullptr},
                {"expired", exp_ms <= ctx.now},
                {"expiration", exp_ms},
                {"last_used_at", nullptr},
                {"created_at", iat_ms},
                {"updated_at", iat_ms}};
    if (exp_ms <= ctx.now) {
        return dead_token(out, false);
    }
    return json_response(200, out);
}

api_response router::revoke(context& ctx) {
    if (auto err = require_m2m_caller(ctx)) {
        return *err;
    }
    const std::string& id = ctx.path[1];
    m2m_token* t = state_.find_token(id);
    if (t == nullptr && state_.is_jwt_id(id)) {
        return error_response(400, "m2m_token_not_revocable", "JWT tokens cannot be revoked",
                              "M2M tokens in JWT format are stateless and cannot be revoked.");
    }
    // A machine key may revoke only its own machine's tokens (spec:12827-12830).
    if (t == nullptr || (ctx.who.machine_ptr != nullptr && t->subject != ctx.who.machine_ptr->id)) {
        return not_found();
    }
    json body = json::object();
    if (!ctx.req.body.empty()) {
        if (auto err = parse_object(ctx.req.body, body)) {
            return *err;
        }
    }
    if (auto err = reject_unknown(body, {"revocation_reason"})) {
        return *err;
    }
    const json reason = body.value("revocation_reason", json(nullptr));
    if (!reason.is_null() && !reason.is_string()) {
        return bad_param("form_param_format_invalid", "revocation_reason", "must be a string");
    }
    if (!t->revoked) {  // revoking twice keeps the first reason
        t->revoked = true;
        t->revocation_reason = reason;
        t->updated_at = ctx.now;
        state_.dirty = true;
    }
    return json_response(200, token_json(*t, ctx.now, false));
}

api_response router::list(context& ctx) {
    if (auto err = require_m2m_caller(ctx)) {
        return *err;
    }
    auto param = [&](const char* name) -> std::optional<std::string> {
        auto it = ctx.query.find(name);
        return it == ctx.query.end() ? std::nullopt : std::optional(it->second);
    };
    const auto subject = param("subject");
    if (!subject || subject->empty()) {
        return bad_param("form_param_missing", "subject", "is missing");
    }
    const auto revoked = parse_bool(param("revoked").value_or("false"));
    const auto expired = parse_bool(param("expired").value_or("false"));
    const auto limit = parse_int(param("limit").value_or("10"));
    const auto offset = parse_int(param("offset").value_or("0"));
    if (!revoked || !expired) {
        return bad_param("form_param_format_invalid", "revoked/expired", "must be true or false");
    }
    if (!limit || *limit < 1 || *limit > 100 || !offset) {
        return bad_param("form_param_format_invalid", "limit/offset",
                         "limit must be 1-100 and offset >= 0");
    }
    if (ctx.who.machine_ptr != nullptr && ctx.who.machine_ptr->id != *subject) {
        return error_response(403, "authorization_invalid", "Unauthorized request",
                              "A Machine Secret Key can list only its own machine's tokens.");
    }
    if (state_.find_machine(*subject) == nullptr) {
        return not_found();
    }
    // revoked/expired=false (the default) hide revoked/expired tokens; true includes them.
    json page = json::array();
    long long total = 0;
    for (const m2m_token* t : state_.tokens_of(*subject)) {
        if ((t->revoked && !*revoked) || (t->expired_at(ctx.now) && !*expired)) {
            continue;
        }
        if (total >= *offset && total < *offset + *limit) {
            page.push_back(token_json(*t, ctx.now, false));
        }
        ++total;
    }
    return json_response(200, {{"m2m_tokens", std::move(page)}, {"total_count", total}});
}

api_response router::jwks(context& ctx) {
    if (!ctx.who.instance) {  // the SDK maps code clerk_key_invalid to secret-key-invalid
        return error_response(401, "clerk_key_invalid", "Secret key invalid",
                              "The provided Clerk Secret Key is invalid. Make sure that your "
                              "Clerk Secret Key is correct.");
    }
    return json_response(200, signer_.jwks());
}

}  // namespace clerk::emulator
