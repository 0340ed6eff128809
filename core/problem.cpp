#include "core/problem.hpp"

#include <nlohmann/json.hpp>

namespace clerk::core {

problem_spec problem_for(decision_kind kind) {
    // docs/reference.md §6, row by row. The only place that maps a decision to HTTP.
    switch (kind) {
        case decision_kind::allow:
            return {200, "", "", ""};
        case decision_kind::missing_token:
            return {401, "missing_token", R"(Bearer realm="clerk-m2m-proxy")", ""};
        case decision_kind::invalid_request:
            return {401, "invalid_request", R"(Bearer error="invalid_request")", ""};
        case decision_kind::invalid_token:
            return {401, "invalid_token", R"(Bearer error="invalid_token")", ""};
        case decision_kind::insufficient_scope:
            return {403, "insufficient_scope", R"(Bearer error="insufficient_scope")", ""};
        case decision_kind::auth_unavailable:
            return {503, "auth_unavailable", "", "1"};
        case decision_kind::upstream_unavailable:
            return {502, "upstream_unavailable", "", ""};
        case decision_kind::upstream_timeout:
            return {504, "upstream_timeout", "", ""};
        case decision_kind::bad_request:
            return {400, "bad_request", "", ""};
        case decision_kind::headers_too_large:
            return {431, "headers_too_large", "", ""};
        case decision_kind::body_too_large:
            return {413, "body_too_large", "", ""};
    }
    return {500, "internal_error", "", ""};
}

std::string problem_body(decision_kind kind, std::string_view reason, std::string_view request_id) {
    // nlohmann objects are ordered by key, which gives "error", "reason", "request_id".
    nlohmann::json body = nlohmann::json::object();
    const problem_spec spec = problem_for(kind);
    body["error"] = std::string(spec.error);
    if (!reason.empty()) {
        body["reason"] = std::string(reason);
    }
    body["request_id"] = std::string(request_id);
    // The request id may come from the client: invalid UTF-8 is replaced, never thrown on.
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace clerk::core
