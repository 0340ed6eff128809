#pragma once
// The Clerk emulator's API and test knobs (tests/emulator, docs/reference.md §10) as the
// integration tests drive them, plus the small request helpers every suite uses.
#include "harness.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace clerk::it {

/// The emulator's default instance secret key.
inline constexpr const char* instance_key = "sk_test_emulator";

/// `Authorization: Bearer <token>`.
http_client::header_list bearer(const std::string& token);

/// One series of the proxy's /metrics (exact name with labels), 0 when absent.
double metric(std::uint16_t admin_port, const std::string& series);

/// A new connection per call: a long case or a soak can outlast the emulator's keep-alive.
/// Every call throws std::runtime_error (path, status, body) on a non-2xx answer.
class clerk_knobs {
public:
    using json = nlohmann::json;

    explicit clerk_knobs(std::uint16_t port) : port_(port) {}

    json post(const std::string& path, const json& body,
              const http_client::header_list& extra = {});
    json get(const std::string& path);

    /// A new token of `machine_id` (its JSON: token, id, …); `extra` adds claims /
    /// expiration_ms / token_format.
    json mint(const std::string& machine_id, json extra = json::object());
    /// The same, the token string only.
    std::string mint_token(const std::string& machine_id, json extra = json::object());
    /// Revokes through the BAPI endpoint, as an operator would.
    void revoke(const std::string& token_id);
    long verify_calls();
    void reset_stats();
    /// Fails the next `count` verify calls (0 = heal); `retry_after` < 0: no Retry-After.
    void fail(long count, const std::string& mode, int status = 500, int retry_after = -1);
    void heal() { fail(0, "status"); }
    void latency(int ms);

private:
    std::uint16_t port_;
};

}  // namespace clerk::it
