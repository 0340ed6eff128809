#pragma once
// Maps one HTTP request to one response for the emulated Clerk Backend API and the
// /__emulator/ knobs. Pure: no sockets, no clock (the server passes `now_ms`), so the whole
// API can be exercised without I/O.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/emulator/emulator_state.hpp"
#include "tests/emulator/jwt_signer.hpp"

namespace clerk::emulator {

/// The parts of an HTTP request the API looks at.
struct api_request {
    std::string method;  // "GET", "POST", ...
    std::string target;  // path and query, as received
    std::optional<std::string> authorization;
    std::optional<std::string> api_version;  // Clerk-API-Version
    std::string body;
};

/// What the connection does instead of (or in addition to) writing the response.
/// `close` ends the connection with a FIN, `reset` with a TCP RST (SO_LINGER 0).
enum class fault { none, hang, close, reset };

struct api_response {
    unsigned status = 200;
    std::string content_type = "application/json";  // exactly this: the SDK compares it
                                                    // (docs/clerk-protocol.md §2.5)
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    fault action = fault::none;
    std::chrono::milliseconds delay{0};  // the latency knob, applied before answering
};

api_response json_response(unsigned status, const nlohmann::json& body);
api_response error_response(unsigned status, std::string_view code, std::string_view message,
                            std::string_view long_message = {});

/// The API. Holds references; both objects outlive it.
///
/// @par Thread Safety
/// None: one io_context thread calls handle().
class router {
public:
    router(emulator_state& state, jwt_signer& signer) : state_(state), signer_(signer) {}

    api_response handle(const api_request& req, std::int64_t now_ms);

private:
    /// Who called: the instance secret key (sk_), a machine secret key, or nobody valid.
    struct caller {
        bool instance = false;
        machine* machine_ptr = nullptr;
        bool valid() const { return instance || machine_ptr != nullptr; }
    };

    /// A parsed request: path segments without the leading "/v1", query, caller.
    struct context {
        const api_request& req;
        std::vector<std::string> path;
        bool v1 = false;
        std::multimap<std::string, std::string> query;
        caller who;
        std::int64_t now = 0;
    };

    enum class endpoint { create, verify, revoke, list, jwks, machines, unknown };
    static endpoint classify(const context& ctx);
    caller identify(const api_request& req);
    std::optional<api_response> injected_fault(endpoint ep);

    api_response clerk_api(context& ctx, endpoint ep);
    api_response create(context& ctx);
    api_response verify(context& ctx);
    api_response verify_jwt(context& ctx, std::string_view jwt);
    /// POST /api_keys/verify and /oauth_applications/access_tokens/verify (other_routes.cpp).
    api_response verify_other(context& ctx);
    /// /__emulator/api_keys, /__emulator/oauth_tokens and their revoke/deactivate knobs.
    api_response knob_other(context& ctx, const nlohmann::json& body);
    /// /__emulator/oauth_tokens with "format": "jwt" (other_routes.cpp).
    api_response oauth_jwt(context& ctx, const nlohmann::json& body);
    /// /__emulator/session_tokens (other_routes.cpp).
    api_response knob_session_token(context& ctx, const nlohmann::json& body);
    api_response revoke(context& ctx);
    api_response list(context& ctx);
    api_response jwks(context& ctx);
    api_response machines(context& ctx);
    /// POST .../machines/{from}/scopes {"to_machine_id"} (BAPI path and knob path alike).
    api_response add_scope(context& ctx, const std::string& from);
    /// Machine-key or sk_ auth plus Clerk-API-Version, required by every m2m_tokens endpoint.
    std::optional<api_response> require_m2m_caller(const context& ctx) const;
    api_response knobs(context& ctx);
    api_response knob_machines(context& ctx, const nlohmann::json& body);
    api_response knob_tokens(context& ctx, const nlohmann::json& body);
    api_response knob_fail(const nlohmann::json& body);

    /// Issues a token (opaque: stored; jwt: signed) and renders the create response (201).
    struct issue_params {
        const machine* issuer = nullptr;
        nlohmann::json claims;
        std::optional<std::int64_t> expiration_ms;  // absolute; nullopt = never
        bool jwt = false;
    };
    api_response issue(const issue_params& params, std::int64_t now_ms);
    /// Revoked/expired opaque token answer according to the revoked_status knob.
    api_response dead_token(const nlohmann::json& token_body, bool revoked);

    emulator_state& state_;
    jwt_signer& signer_;
};

/// Parses a request body that must be a JSON object. On failure returns the 400 response.
std::optional<api_response> parse_object(const std::string& body, nlohmann::json& out);
/// 400 `form_param_unknown` for the first key of `body` not in `allowed`.
std::optional<api_response> reject_unknown(const nlohmann::json& body,
                                           std::initializer_list<std::string_view> allowed);

}  // namespace clerk::emulator
