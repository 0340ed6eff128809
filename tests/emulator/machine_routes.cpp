// Machines (BAPI /v1/machines, docs/clerk-protocol.md §6.5) and the /__emulator/ test knobs.

#include <cmath>

#include "tests/emulator/router.hpp"

namespace clerk::emulator {

using nlohmann::json;

namespace {

api_response not_found() {
    return error_response(404, "resource_not_found", "not found",
                          "The requested resource was not found.");
}

api_response knob_error(std::string_view message) {
    return error_response(400, "emulator_knob_invalid", message);
}

std::optional<std::vector<std::string>> string_list(const json& value) {
    if (value.is_null()) {
        return std::vector<std::string>{};
    }
    if (!value.is_array()) {
        return std::nullopt;
    }
    std::vector<std::string> out;
    for (const auto& v : value) {
        if (!v.is_string()) {
            return std::nullopt;
        }
        out.push_back(v.get<std::string>());
    }
    return out;
}

}  // namespace

api_response router::add_scope(context& ctx, const std::string& from) {
    json body;
    if (auto err = parse_object(ctx.req.body, body)) {
        return *err;
    }
    if (!body.contains("to_machine_id") || !body["to_machine_id"].is_string()) {
        return error_response(400, "form_param_missing", "to_machine_id is missing");
    }
    const auto to = body["to_machine_id"].get<std::string>();
    if (!state_.add_scope(from, to, ctx.now)) {
        return not_found();
    }
    return json_response(200, {{"object", "machine_scope"},
                               {"from_machine_id", from},
                               {"to_machine_id", to},
                               {"created_at", ctx.now}});
}

api_response router::machines(context& ctx) {
    if (!ctx.who.instance) {
        return error_response(401, "clerk_key_invalid", "Secret key invalid",
                              "The /v1/machines endpoints need the instance secret key (sk_).");
    }
    const auto& p = ctx.path;  // p[0] == "machines"
    const auto& method = ctx.req.method;
    if (p.size() == 1 && method == "GET") {
        json data = json::array();
        for (const auto& m : state_.machines()) {
            data.push_back(state_.machine_json(m, false));
        }
        return json_response(200, {{"data", data}, {"total_count", data.size()}});
    }
    if (p.size() == 1 && method == "POST") {
        json body;
        if (auto err = parse_object(ctx.req.body, body)) {
            return *err;
        }
        const auto scoped = string_list(body.value("scoped_machines", json(nullptr)));
        if (!body.contains("name") || !body["name"].is_string() || !scoped) {
            return error_response(400, "form_param_missing", "name is missing or invalid");
        }
        machine& m = state_.create_machine(body["name"].get<std::string>(), {}, ctx.now);
        const std::string id = m.id;
        for (const auto& to : *scoped) {
            state_.add_scope(id, to, ctx.now);
        }
        if (body.contains("default_token_ttl") && body["default_token_ttl"].is_number_integer()) {
            state_.find_machine(id)->default_token_ttl = body["default_token_ttl"].get<long long>();
        }
        return json_response(200, state_.machine_json(*state_.find_machine(id), true));
    }
    machine* m = p.size() >= 2 ? state_.find_machine(p[1]) : nullptr;
    if (m == nullptr) {
        return not_found();
    }
    if (p.size() == 2 && method == "GET") {
        return json_response(200, state_.machine_json(*m, false));
    }
    if (p.size() == 3 && p[2] == "secret_key" && method == "GET") {
        return json_response(200, {{"object", "machine_secret_key"}, {"secret", m->secret_key}});
    }
    if (p.size() == 3 && p[2] == "scopes" && method == "POST") {
        return add_scope(ctx, p[1]);
    }
    if (p.size() == 4 && p[2] == "scopes" && method == "DELETE") {
        if (!state_.remove_scope(p[1], p[3], ctx.now)) {
            return not_found();
        }
        return json_response(200, {{"object", "machine_scope"},
                                   {"from_machine_id", p[1]},
                                   {"to_machine_id", p[3]},
                                   {"deleted", true}});
    }
    return not_found();
}

api_response router::knobs(context& ctx) {
    const auto& p = ctx.path;  // p[0] == "__emulator"
    const std::string name = p.size() >= 2 ? p[1] : "";
    const bool get = ctx.req.method == "GET";
    const bool post = ctx.req.method == "POST";
    json body = json::object();
    if (post && !ctx.req.body.empty()) {
        if (auto err = parse_object(ctx.req.body, body)) {
            return *err;
        }
    }
    if (p.size() == 2 && get && name == "stats") {
        return json_response(200, state_.stats.to_json());
    }
    if (p.size() == 2 && post && name == "reset_stats") {
        state_.stats = {};
        return json_response(200, state_.stats.to_json());
    }
    if (p.size() == 2 && post && name == "latency") {
        if (!body.contains("ms") || !body["ms"].is_number_integer() || body["ms"] < 0 ||
            body["ms"] > 600000) {
            return knob_error("latency: ms must be an integer in [0, 600000]");
        }
        state_.latency = std::chrono::milliseconds(body["ms"].get<long long>());
        return json_response(200, {{"ms", state_.latency.count()}});
    }
    if (p.size() == 2 && post && name == "fail") {
        return knob_fail(body);
    }
    if (p.size() == 2 && (get || post) && name == "config") {
        if (body.contains("revoked_status")) {
            const json& s = body["revoked_status"];
            if (s != 200 && s != 404) {
                return knob_error("config: revoked_status must be 200 or 404");
            }
            state_.revoked_status = s.get<unsigned>();
        }
        return json_response(200, {{"revoked_status", state_.revoked_status},
                                   {"latency_ms", state_.latency.count()},
                                   {"fail_remaining", state_.fail.remaining}});
    }
    if (p.size() >= 2 && name == "machines") {
        return knob_machines(ctx, body);
    }
    if (p.size() == 2 && post && name == "tokens") {
        return knob_tokens(ctx, body);
    }
    if (p.size() >= 2 && post && (name == "api_keys" || name == "oauth_tokens")) {
        return knob_other(ctx, body);
    }
    if (p.size() == 2 && post && name == "session_tokens") {
        return knob_session_token(ctx, body);
    }
    if (p.size() == 2 && post && name == "rotate_jwks") {
        state_.dirty = true;  // the keys are part of --state-file
        return json_response(200, {{"kid", signer_.rotate()}});
    }
    if (p.size() == 2 && get && name == "jwt_public_key") {
        api_response res;
        res.content_type = "text/plain";
        res.body = signer_.public_key_pem();
        return res;
    }
    return not_found();
}

api_response router::knob_fail(const json& body) {
    fault_plan plan;
    plan.remaining = 1;
    if (body.contains("count")) {
        if (!body["count"].is_number_integer() || body["count"] < 0 || body["count"] > 1000000000) {
            return knob_error("fail: count must be an integer >= 0");
        }
        plan.remaining = body["count"].get<int>();
    }
    if (body.contains("status")) {
        if (!body["status"].is_number_integer() || body["status"] < 200 || body["status"] > 599) {
            return knob_error("fail: status must be an HTTP status");
        }
        plan.status = body["status"].get<unsigned>();
    }
    if (body.contains("retry_after")) {
        if (!body["retry_after"].is_number_integer() || body["retry_after"] < 0 ||
            body["retry_after"] > 86400) {
            return knob_error("fail: retry_after must be an integer >= 0");
        }
        plan.retry_after = body["retry_after"].get<int>();
    }
    const std::string mode = body.value("mode", std::string("status"));
    if (mode == "status") {
        plan.mode = fault_mode::status;
    } else if (mode == "hang") {
        plan.mode = fault_mode::hang;
    } else if (mode == "close") {
        plan.mode = fault_mode::close;
    } else if (mode == "reset") {
        plan.mode = fault_mode::reset;
    } else if (mode == "garbage") {
        plan.mode = fault_mode::garbage;
    } else {
        return knob_error("fail: mode must be status, hang, close, reset or garbage");
    }
    const std::string ep = body.value("endpoint", std::string("any"));
    if (ep == "any") {
        plan.endpoint = fault_endpoint::any;
    } else if (ep == "verify") {
        plan.endpoint = fault_endpoint::verify;
    } else if (ep == "jwks") {
        plan.endpoint = fault_endpoint::jwks;
    } else {
        return knob_error("fail: endpoint must be verify, jwks or any");
    }
    state_.fail = plan;
    return json_response(
        200,
        {{"count", plan.remaining}, {"status", plan.status}, {"mode", mode}, {"endpoint", ep}});
}

api_response router::knob_machines(context& ctx, const json& body) {
    const auto& p = ctx.path;
    if (p.size() == 2 && ctx.req.method == "GET") {
        json out = json::array();
        for (const auto& m : state_.machines()) {
            out.push_back(state_.machine_json(m, true));
        }
        return json_response(200, out);
    }
    if (p.size() == 2 && ctx.req.method == "POST") {
        const auto scopes = string_list(body.value("scopes", json(nullptr)));
        if (!body.contains("name") || !body["name"].is_string() || !scopes) {
            return knob_error("machines: name (string) and scopes (array of ids) expected");
        }
        for (const auto& id : *scopes) {
            if (state_.find_machine(id) == nullptr) {
                return knob_error("machines: unknown machine in scopes");
            }
        }
        const machine& m = state_.create_machine(body["name"].get<std::string>(), *scopes, ctx.now);
        return json_response(200, {{"id", m.id}, {"name", m.name}, {"secret_key", m.secret_key}});
    }
    if (p.size() == 4 && p[3] == "scopes" && ctx.req.method == "POST") {
        return add_scope(ctx, p[2]);
    }
    return not_found();
}

api_response router::knob_tokens(context& ctx, const json& body) {
    const machine* issuer = body.contains("machine_id") && body["machine_id"].is_string()
                                ? state_.find_machine(body["machine_id"].get<std::string>())
                                : nullptr;
    if (issuer == nullptr) {
        return knob_error("tokens: machine_id of a known machine expected");
    }
    issue_params params{issuer, body.value("claims", json(nullptr)), std::nullopt, false};
    const json format = body.value("token_format", json("opaque"));
    if (format != "opaque" && format != "jwt") {
        return knob_error("tokens: token_format must be opaque or jwt");
    }
    params.jwt = format == "jwt";
    if (params.jwt && !params.claims.is_null() && !params.claims.is_object()) {
        return knob_error("tokens: claims must be an object for jwt tokens");
    }
    // Any expiration is allowed here, even in the past: expiration_ms (absolute) wins over
    // seconds_until_expiration (relative, may be <= 0).
    const json abs = body.value("expiration_ms", json(nullptr));
    const json rel = body.value("seconds_until_expiration", json(nullptr));
    constexpr double limit_ms = 1e16;  // year ~318857: far from int64 overflow either way
    if ((abs.is_number() && std::fabs(abs.get<double>()) > limit_ms) ||
        (rel.is_number() && std::fabs(rel.get<double>()) * 1000.0 > limit_ms)) {
        return knob_error("tokens: expiration out of range (|ms| <= 1e16)");
    }
    if (abs.is_number()) {
        params.expiration_ms = std::llround(abs.get<double>());
    } else if (rel.is_number()) {
        params.expiration_ms = ctx.now + std::llround(rel.get<double>() * 1000.0);
    } else if (!abs.is_null() || !rel.is_null()) {
        return knob_error("tokens: expiration_ms / seconds_until_expiration must be numbers");
    }
    return issue(params, ctx.now);
}

}  // namespace clerk::emulator
