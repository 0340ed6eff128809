#pragma once
// Pure state of the emulated Clerk instance: machines, M2M tokens, knobs and counters, and the
// JSON shapes of docs/clerk-protocol.md §3.2/§6. No Asio and no clock: callers pass `now_ms`.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace clerk::emulator {

/// A machine of the instance. `scoped_machines` are the machines its tokens may access.
struct machine {
    std::string id;
    std::string name;
    std::string secret_key;
    std::vector<std::string> scoped_machines;
    std::int64_t default_token_ttl = 3600;  // seconds; used for JWTs without an expiration
    std::int64_t created_at = 0;            // ms
    std::int64_t updated_at = 0;            // ms
};

/// An opaque M2M token (JWT-format tokens are stateless and not stored).
struct m2m_token {
    std::string id;      // mt_ + 32 hex
    std::string secret;  // mt_ + 32 alphanumerics
    std::string subject;
    nlohmann::json claims;  // null when none
    std::vector<std::string> scopes;
    bool revoked = false;
    nlohmann::json revocation_reason;        // null or string
    std::optional<std::int64_t> expiration;  // ms; nullopt = never expires
    std::optional<std::int64_t> last_used_at;
    std::int64_t created_at = 0;
    std::int64_t updated_at = 0;
    std::uint64_t seq = 0;  // creation order, for newest-first listing

    bool expired_at(std::int64_t now_ms) const { return expiration && *expiration <= now_ms; }
};

/// An API key or an OAuth access token (docs/clerk-protocol.md §3.3, §3.4): the verify endpoint's
/// 200 body is stored as it is answered. Not persisted by --state-file.
struct other_token {
    bool oauth = false;     ///< else an API key
    bool inactive = false;  ///< OAuth: verify answers 200 {"active": false}
    nlohmann::json body;
};

/// How an injected failure behaves (POST /__emulator/fail).
/// `reset` aborts the connection (TCP RST: SO_LINGER 0, then close) instead of answering.
enum class fault_mode { status, hang, close, reset, garbage };
enum class fault_endpoint { any, verify, jwks };

struct fault_plan {
    int remaining = 0;
    unsigned status = 500;
    std::optional<int> retry_after;  // seconds, sent with any status when set
    fault_mode mode = fault_mode::status;
    fault_endpoint endpoint = fault_endpoint::any;
};

/// Counters of Clerk API calls received (knob calls are not counted).
struct call_stats {
    std::uint64_t verify = 0, create = 0, revoke = 0, list = 0, jwks = 0, total = 0;
    nlohmann::json to_json() const;
};

/// The emulated instance. One object, used only from the emulator's io_context thread.
class emulator_state {
public:
    explicit emulator_state(std::string instance_secret_key);

    const std::string& instance_secret_key() const { return instance_secret_key_; }

    // Knobs and counters, mutated directly by the router.
    call_stats stats;
    std::chrono::milliseconds latency{0};
    unsigned revoked_status = 404;  // 404 (error) or 200 (body with revoked/expired true)
    fault_plan fail;
    std::map<std::string, other_token, std::less<>> other_tokens;  ///< by secret

    // Machines.
    machine& create_machine(std::string name, std::vector<std::string> scoped, std::int64_t now_ms);
    machine* find_machine(std::string_view id);
    machine* find_machine_by_key(std::string_view secret_key);
    machine* find_machine_by_name(std::string_view name);
    const std::vector<machine>& machines() const { return machines_; }
    /// Adds `to` to `from`'s scopes (idempotent). False if either machine is unknown.
    bool add_scope(std::string_view from, std::string_view to, std::int64_t now_ms);
    bool remove_scope(std::string_view from, std::string_view to, std::int64_t now_ms);

    // Opaque tokens.
    m2m_token& add_token(m2m_token token);
    m2m_token* find_token(std::string_view id);
    m2m_token* find_token_by_secret(std::string_view secret);
    /// Tokens of `subject`, newest first.
    std::vector<const m2m_token*> tokens_of(std::string_view subject) const;

    // Ids of JWT-format tokens issued (they cannot be revoked: the router answers 400).
    void remember_jwt_id(std::string id) { jwt_ids_.insert(std::move(id)); }
    bool is_jwt_id(std::string_view id) const { return jwt_ids_.count(std::string(id)) != 0; }

    /// Set by every mutation of machines or tokens; cleared by whoever persists the state.
    bool dirty = false;

    /// Clerk's machine object (d.ts MachineJSON), optionally with `secret_key`. Scoped machines
    /// are nested machine objects, as the SDK's Machine.fromJSON expects.
    nlohmann::json machine_json(const machine& m, bool with_secret) const;

    /// Machines and tokens for --state-file (knobs and counters are not persisted).
    nlohmann::json to_json() const;
    /// Replaces machines and tokens from to_json() output; false if the shape is wrong.
    bool load_json(const nlohmann::json& doc);

private:
    std::string instance_secret_key_;
    std::vector<machine> machines_;
    std::map<std::string, m2m_token, std::less<>> tokens_;       // by id
    std::unordered_map<std::string, std::string> secret_index_;  // secret -> id
    std::set<std::string> jwt_ids_;
    std::uint64_t next_seq_ = 1;
};

/// The docs/clerk-protocol.md §3.2 object. `with_secret` adds `token` (create response only).
nlohmann::json token_json(const m2m_token& token, std::int64_t now_ms, bool with_secret);
/// `{"errors":[{"message","long_message","code"}],"clerk_trace_id":"..."}`.
nlohmann::json error_json(std::string_view code, std::string_view message,
                          std::string_view long_message = {});

}  // namespace clerk::emulator
