#include "tests/emulator/router.hpp"

#include <algorithm>
#include <cctype>

namespace clerk::emulator {

using nlohmann::json;

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/// Percent-decoding ('+' is a space in query strings). Invalid escapes are kept verbatim.
std::string url_decode(std::string_view in, bool plus_is_space) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '%' && i + 2 < in.size() + 0 && hex_value(in[i + 1]) >= 0 &&
            hex_value(in[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
            i += 2;
        } else if (in[i] == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(in[i]);
        }
    }
    return out;
}

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < path.size()) {
        auto next = path.find('/', pos);
        if (next == std::string_view::npos) {
            next = path.size();
        }
        if (next > pos) {
            out.push_back(url_decode(path.substr(pos, next - pos), false));
        }
        pos = next + 1;
    }
    return out;
}

std::multimap<std::string, std::string> parse_query(std::string_view query) {
    std::multimap<std::string, std::string> out;
    std::size_t pos = 0;
    while (pos < query.size()) {
        auto amp = query.find('&', pos);
        if (amp == std::string_view::npos) {
            amp = query.size();
        }
        const auto pair = query.substr(pos, amp - pos);
        if (!pair.empty()) {
            const auto eq = pair.find('=');
            if (eq == std::string_view::npos) {
                out.emplace(url_decode(pair, true), "");
            } else {
                out.emplace(url_decode(pair.substr(0, eq), true),
                            url_decode(pair.substr(eq + 1), true));
            }
        }
        pos = amp + 1;
    }
    return out;
}

}  // namespace

api_response json_response(unsigned status, const json& body) {
    api_response res;
    res.status = status;
    res.body = body.dump();
    return res;
}

api_response error_response(unsigned status, std::string_view code, std::string_view message,
                            std::string_view long_message) {
    return json_response(status, error_json(code, message, long_message));
}

std::optional<api_response> parse_object(const std::string& body, json& out) {
    out = json::parse(body, nullptr, false);
    if (out.is_discarded() || !out.is_object()) {
        return error_response(400, "request_body_invalid", "Request body must be a JSON object.",
                              "The request body could not be parsed as a JSON object.");
    }
    return std::nullopt;
}

std::optional<api_response> reject_unknown(const json& body,
                                           std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, value] : body.items()) {
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
            return error_response(400, "form_param_unknown", "is unknown",
                                  key + " is not a valid parameter for this request.");
        }
    }
    return std::nullopt;
}

router::endpoint router::classify(const context& ctx) {
    const auto& p = ctx.path;
    const auto& m = ctx.req.method;
    if (!p.empty() && p[0] == "m2m_tokens") {
        if (p.size() == 1 && m == "POST") {
            return endpoint::create;
        }
        if (p.size() == 1 && m == "GET") {
            return endpoint::list;
        }
        if (p.size() == 2 && p[1] == "verify" && m == "POST") {
            return endpoint::verify;
        }
    }
    // API keys and OAuth access tokens count as verify calls (stats, injected failures).
    if (m == "POST" && ((p.size() == 2 && p[0] == "api_keys" && p[1] == "verify") ||
                        (p.size() == 3 && p[0] == "oauth_applications" && p[1] == "access_tokens" &&
                         p[2] == "verify"))) {
        return endpoint::verify;
    }
    if (!p.empty() && p[0] == "m2m_tokens") {
        if (p.size() == 3 && p[2] == "revoke" && m == "POST") {
            return endpoint::revoke;
        }
    }
    if (ctx.v1 && p.size() == 1 && p[0] == "jwks" && m == "GET") {
        return endpoint::jwks;
    }
    if (ctx.v1 && !p.empty() && p[0] == "machines") {
        return endpoint::machines;
    }
    return endpoint::unknown;
}

router::caller router::identify(const api_request& req) {
    caller who;
    if (!req.authorization) {
        return who;
    }
    std::string_view value = *req.authorization;
    constexpr std::string_view scheme = "bearer ";
    if (value.size() <= scheme.size() ||
        !std::equal(scheme.begin(), scheme.end(), value.begin(), [](char a, char b) {
            return a == std::tolower(static_cast<unsigned char>(b));
        })) {
        return who;
    }
    value.remove_prefix(scheme.size());
    if (value == state_.instance_secret_key()) {
        who.instance = true;
    } else {
        who.machine_ptr = state_.find_machine_by_key(value);
    }
    return who;
}

std::optional<api_response> router::injected_fault(endpoint ep) {
    fault_plan& plan = state_.fail;
    if (plan.remaining <= 0 || (ep != endpoint::verify && ep != endpoint::jwks)) {
        return std::nullopt;
    }
    if ((plan.endpoint == fault_endpoint::verify && ep != endpoint::verify) ||
        (plan.endpoint == fault_endpoint::jwks && ep != endpoint::jwks)) {
        return std::nullopt;
    }
    --plan.remaining;
    api_response res;
    switch (plan.mode) {
        case fault_mode::hang:
            res.action = fault::hang;
            return res;
        case fault_mode::close:
            res.action = fault::close;
            return res;
        case fault_mode::reset:
            res.action = fault::reset;
            return res;
        case fault_mode::garbage:
            res.body = "<html><body>502 Bad Gateway (emulated garbage)</body></html>";
            return res;
        case fault_mode::status:
            break;
    }
    const bool throttled = plan.status == 429;
    res = error_response(plan.status, throttled ? "too_many_requests" : "internal_clerk_error",
                         throttled ? "Too many requests" : "Injected failure",
                         "Injected by POST /__emulator/fail.");
    if (plan.retry_after) {
        res.headers.emplace_back("Retry-After", std::to_string(*plan.retry_after));
    }
    return res;
}

api_response router::handle(const api_request& req, std::int64_t now_ms) {
    const std::string_view target = req.target;
    const auto qmark = target.find('?');
    context ctx{req,
                split_path(target.substr(0, qmark)),
                false,
                qmark == std::string_view::npos ? std::multimap<std::string, std::string>{}
                                                : parse_query(target.substr(qmark + 1)),
                {},
                now_ms};
    if (target.empty() || target.front() != '/') {
        return error_response(400, "request_invalid", "Request target must be an absolute path.");
    }
    if (!ctx.path.empty() && ctx.path[0] == "__emulator") {
        return knobs(ctx);
    }
    if (!ctx.path.empty() && ctx.path[0] == "v1") {
        ctx.v1 = true;
        ctx.path.erase(ctx.path.begin());
    }

    // Clerk API: count, apply latency, maybe inject a failure, then answer.
    const endpoint ep = classify(ctx);
    auto& stats = state_.stats;
    ++stats.total;
    switch (ep) {
        case endpoint::create:
            ++stats.create;
            break;
        case endpoint::verify:
            ++stats.verify;
            break;
        case endpoint::revoke:
            ++stats.revoke;
            break;
        case endpoint::list:
            ++stats.list;
            break;
        case endpoint::jwks:
            ++stats.jwks;
            break;
        case endpoint::machines:
        case endpoint::unknown:
            break;
    }
    api_response res;
    if (auto injected = injected_fault(ep)) {
        res = std::move(*injected);
    } else {
        ctx.who = identify(req);
        res = clerk_api(ctx, ep);
    }
    res.delay = state_.latency;
    return res;
}

}  // namespace clerk::emulator
