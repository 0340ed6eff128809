// API keys and OAuth access tokens of the emulated BAPI (docs/clerk-protocol.md §3.3, §3.4): their
// verify endpoints, and knobs that create, revoke or deactivate them.
//
//   POST /__emulator/api_keys      {"subject", "scopes"?, "claims"?, "expiration_ms"?}
//        -> 201 {"secret": "ak_…", "id": "ak_…"}
//   POST /__emulator/api_keys/revoke      {"secret"}
//   POST /__emulator/oauth_tokens  {"subject", "scopes"?, "client_id"?, "aud"?, "expiration_ms"?}
//        -> 201 {"token": "oat_…", "id": "oat_…"}
//   POST /__emulator/oauth_tokens/deactivate  {"token"}   (verify then answers {"active": false})
//   POST /__emulator/oauth_tokens  {"format": "jwt", "subject", "scopes"?, "client_id"?, "aud"?,
//        "expiration_ms"?}  -> 201 {"token": "<JWT, typ at+jwt>", "id": "oat_…"}  (stateless)
//   POST /__emulator/session_tokens  {"user_id", "session_id"?, "azp"?, "status"?, "version"?
//        (2, or 1), "org"? {"id", "slug"?, "role"?}, "claims"? {custom}, "expiration_ms"?}
//        -> 201 {"token": "<JWT, cat cl_B7d4PD111AAA>", "session_id"}  (stateless)

#include "tests/emulator/random_ids.hpp"
#include "tests/emulator/router.hpp"

namespace clerk::emulator {

using nlohmann::json;

namespace {

api_response secret_key_invalid() {
    return error_response(401, "authentication_invalid", "Unauthorized request",
                          "The provided Clerk Secret Key is invalid.");
}

api_response not_found(std::string_view what) {
    return error_response(404, "resource_not_found", "not found", std::string(what) + " not found");
}

}  // namespace

api_response router::verify_other(context& ctx) {
    // Both endpoints take the instance secret key only (a machine key is refused).
    if (!ctx.who.instance) {
        return secret_key_invalid();
    }
    const bool oauth = ctx.path[0] == "oauth_applications";
    const std::string field = oauth ? "access_token" : "secret";
    json body;
    if (auto err = parse_object(ctx.req.body, body)) {
        return *err;
    }
    if (!body.contains(field) || !body[field].is_string()) {
        return error_response(400, "form_param_missing", "is missing", field + " is missing");
    }
    const auto secret = body[field].get<std::string>();
    const auto it = state_.other_tokens.find(secret);
    if (it == state_.other_tokens.end() || it->second.oauth != oauth) {
        return not_found(oauth ? "OAuth access token" : "API key");
    }
    if (it->second.inactive) {
        return json_response(200, {{"active", false}});
    }
    json answer = it->second.body;
    if (answer["expiration"].is_number() && answer["expiration"].get<std::int64_t>() <= ctx.now) {
        answer["expired"] = true;
    }
    return json_response(200, answer);
}

api_response router::knob_other(context& ctx, const json& body) {
    const auto& p = ctx.path;
    const bool oauth = p[1] == "oauth_tokens";
    if (p.size() == 3) {
        // revoke (API key) or deactivate (OAuth token)
        const std::string field = oauth ? "token" : "secret";
        const auto it = body.contains(field) && body[field].is_string()
                            ? state_.other_tokens.find(body[field].get<std::string>())
                            : state_.other_tokens.end();
        if (it == state_.other_tokens.end()) {
            return not_found("token");
        }
        if (oauth && p[2] == "deactivate") {
            it->second.inactive = true;
        } else if (!oauth && p[2] == "revoke") {
            it->second.body["revoked"] = true;
            it->second.body["revocation_reason"] = "revoked by a test";
        } else {
            return not_found("knob");
        }
        return json_response(200, it->second.body);
    }
    if (!body.contains("subject") || !body["subject"].is_string()) {
        return error_response(400, "form_param_missing", "is missing", "subject is missing");
    }
    if (oauth && body.value("format", std::string("opaque")) == "jwt") {
        return oauth_jwt(ctx, body);
    }
    const std::string id = (oauth ? "oat_" : "ak_") + random_hex(32);
    const std::string secret = oauth ? id : "ak_" + random_hex(32);
    json b;
    if (oauth) {
        b = {{"object", "clerk_idp_oauth_access_token"},
             {"id", id},
             {"client_id", body.value("client_id", std::string("client_emulated"))},
             {"subject", body["subject"]},
             {"scopes", body.value("scopes", json::array())},
             {"revoked", false},
             {"revocation_reason", nullptr},
             {"expired", false},
             {"expiration", body.contains("expiration_ms") ? body["expiration_ms"] : json()},
             {"created_at", ctx.now},
             {"updated_at", ctx.now}};
        if (body.contains("aud")) {
            b["aud"] = body["aud"];
        }
    } else {
        b = {{"object", "api_key"},
             {"id", id},
             {"type", "api_key"},
             {"subject", body["subject"]},
             {"name", "emulated key"},
             {"description", nullptr},
             {"claims", body.contains("claims") ? body["claims"] : json()},
             {"scopes", body.value("scopes", json::array())},
             {"revoked", false},
             {"revocation_reason", nullptr},
             {"expired", false},
             {"expiration", body.contains("expiration_ms") ? body["expiration_ms"] : json()},
             {"created_by", nullptr},
             {"last_used_at", nullptr},
             {"created_at", ctx.now},
             {"updated_at", ctx.now}};
    }
    state_.other_tokens[secret] = other_token{oauth, false, b};
    return json_response(201, {{oauth ? "token" : "secret", secret}, {"id", id}});
}

namespace {

// exp for a stateless JWT: expiration_ms when given, else now + `default_s`.
std::int64_t jwt_exp_seconds(const json& body, std::int64_t now_ms, std::int64_t default_s) {
    if (body.contains("expiration_ms") && body["expiration_ms"].is_number()) {
        return body["expiration_ms"].get<std::int64_t>() / 1000;
    }
    return now_ms / 1000 + default_s;
}

}  // namespace

// An OAuth access token in JWT format as Clerk mints it (RFC 9068 typ,
// docs/clerk-protocol.md §4.4).
api_response router::oauth_jwt(context& ctx, const json& body) {
    const std::string id = "oat_" + random_hex(32);
    const std::int64_t iat = ctx.now / 1000;
    json payload = {{"iss", "https://clerk.emulated"},
                    {"sub", body["subject"]},
                    {"client_id", body.value("client_id", std::string("client_emulated"))},
                    {"scp", body.value("scopes", json::array())},
                    {"jti", id},
                    {"iat", iat},
                    {"nbf", iat},
                    {"exp", jwt_exp_seconds(body, ctx.now, 3600)}};
    if (body.contains("aud")) {
        payload["aud"] = body["aud"];
    }
    const std::string token = signer_.sign(payload, {{"typ", "at+jwt"}, {"cat", nullptr}});
    return json_response(201, {{"token", token}, {"id", id}});
}

// A session token as Clerk's frontend API mints it (docs/clerk-protocol.md §4.5), claims version 2
// (organization in `o`) unless "version": 1 asks for the org_* claims.
api_response router::knob_session_token(context& ctx, const json& body) {
    if (!body.contains("user_id") || !body["user_id"].is_string()) {
        return error_response(400, "form_param_missing", "is missing", "user_id is missing");
    }
    const std::string sid = body.contains("session_id") && body["session_id"].is_string()
                                ? body["session_id"].get<std::string>()
                                : "sess_" + random_hex(27);
    const std::int64_t iat = ctx.now / 1000;
    json payload =
        body.contains("claims") && body["claims"].is_object() ? body["claims"] : json::object();
    payload["iss"] = "https://clerk.emulated";
    payload["sub"] = body["user_id"];
    payload["sid"] = sid;
    payload["sts"] = body.value("status", std::string("active"));
    payload["iat"] = iat;
    payload["nbf"] = iat;
    payload["exp"] = jwt_exp_seconds(body, ctx.now, 60);
    payload["fva"] = json::array({0, -1});
    if (body.contains("azp") && body["azp"].is_string()) {
        payload["azp"] = body["azp"];
    }
    const int version = body.value("version", 2);
    if (version == 2) {
        payload["v"] = 2;
    }
    if (body.contains("org") && body["org"].is_object()) {
        const json& org = body["org"];
        if (version == 2) {
            payload["o"] = {{"id", org.value("id", std::string())},
                            {"slg", org.value("slug", std::string())},
                            {"rol", org.value("role", std::string("member"))}};
        } else {
            payload["org_id"] = org.value("id", std::string());
            payload["org_slug"] = org.value("slug", std::string());
            payload["org_role"] = "org:" + org.value("role", std::string("member"));
        }
    }
    const std::string token = signer_.sign(payload, {{"cat", "cl_B7d4PD111AAA"}});
    return json_response(201, {{"token", token}, {"session_id", sid}});
}

}  // namespace clerk::emulator
