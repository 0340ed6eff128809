#pragma once
// Shared fixtures of the security regression suite (security_*_it.cpp).
//
// The security regression suite of issue #7 item 4, through the real binaries on 127.0.0.1 port 0:
// request smuggling, path confusion, identity header spoofing, oversized and duplicated headers,
// slowloris, cache flooding, tokens in the query string and secrets in logs. Every case asserts
// what the upstream received (exact target, headers and body), or that it received nothing, and
// the status the client got. Waits are conditions with deadlines; the only pauses are the
// deliberate dribbles of the slowloris cases.
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace clerk::it::security_fixtures {

inline constexpr const char* smuggled = "GET /public/smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// The response body as JSON; an empty object when it is not JSON.
nlohmann::json body_json(const http_response& r);

std::string lower(std::string s);

/// The names of `seen` that an identity header could hide behind (any X-Clerk-* or the
/// claims_to_headers target X-Tenant-Id, in any case, '_' or '-').
std::vector<std::string> identity_like(const recorded_request& seen);

/// /public/* is auth: none, /admin/* needs scope `admin_scope`, everything else needs a token.
/// `api_url` "" points Clerk at a closed port. `extra` is appended at top level.
std::string sec_config(const std::string& upstream_url, const std::string& api_url = {},
                       const std::string& admin_scope = "mch_admin", const std::string& extra = {});

/// The emulator with machines a, b and c (c's tokens carry scopes [a, b]; /admin/* needs a).
struct clerk_env {
    clerk_env();
    const std::string& a_id() const { return emu.machines().at(0).id; }
    const std::string& b_id() const { return emu.machines().at(1).id; }
    std::string config(const std::string& extra = {}) const;

    temp_dir dir;
    emulator_process emu;
    recording_upstream up;
    clerk_knobs knobs;
    std::string c_id;
    std::string lonely_id;  ///< a machine without scopes
};

http_client::options short_timeout();

/// Sends `bytes` on a fresh connection and reads one response.
http_response raw_exchange(std::uint16_t port, const std::string& bytes);

/// A refused request: 400 bad_request, Connection: close, and the proxy closes the connection.
void check_refused_and_closed(http_client& c, const std::string& bytes);

/// After an attack: a fresh request goes through, and it is the only one the upstream ever got.
/// The attack connection is closed by then, so nothing it carried can be forwarded later.
void check_only_sentinel_forwarded(const proxy_process& proxy, const recording_upstream& up);

}  // namespace clerk::it::security_fixtures
