// API keys and OAuth access tokens of the emulated BAPI (clerk-protocol.md §4.1, §4.2): their
// verify endpoints, and knobs that create, revoke or deactivate them.
//
//   POST /__emulator/api_keys      {"subject", "scopes"?, "claims"?, "expiration_ms"?}
//        -> 201 {"secret": "ak_…", "id": "ak_…"}
//   POST /__emulator/api_keys/revoke      {"secret"}
//   POST /__emulator/oauth_tokens  {"subject", "scopes"?, "client_id"?, "aud"?, "expiration_ms"?}
//        -> 201 {"token": "oat_…", "id": "oat_…"}
//   POST /__emulator/oauth_tokens/deactivate  {"token"}   (verify then answers {"active": false})

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

}  // namespace clerk::emulator
