#pragma once
// Which incoming headers never reach the upstream, and which identity headers are injected
// (docs/reference.md §3 "headers", §5 "Identity headers" and "Hop-by-hop headers"). Pure,
// immutable.
#include "core/identity.hpp"

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clerk::core {

struct identity_header_names {
    std::string subject = "X-Clerk-Subject";
    std::string machine_id = "X-Clerk-Machine-Id";
    std::string token_id = "X-Clerk-Token-Id";
    std::string token_type = "X-Clerk-Token-Type";
    std::string scopes = "X-Clerk-Scopes";
    std::string claims = "X-Clerk-Claims";
    std::string user_id = "X-Clerk-User-Id";  ///< set when the subject is a user (user_…)
    std::string org_id = "X-Clerk-Org-Id";    ///< an org_ subject, or a session's active org
    std::vector<std::string> strip_prefixes{"X-Clerk-"};
    /// claim name -> header name, in config order
    std::vector<std::pair<std::string, std::string>> claims_to_headers;
};

/// Lower-cased tokens of all Connection header values ("close, X-Foo" -> {"close","x-foo"}).
std::vector<std::string> connection_tokens(std::span<const std::string_view> connection_values);
/// The same into `out`, reusing its storage (no allocation once `out` has held as many tokens).
void connection_tokens(std::span<const std::string_view> connection_values,
                       std::vector<std::string>& out);

/// RFC 9110 §7.6.1 hop-by-hop set plus Keep-Alive and Proxy-Connection (case-insensitive).
bool is_hop_by_hop(std::string_view name);

/// Immutable per config snapshot. Thread safety: const methods are safe from any thread.
class header_rules {
public:
    explicit header_rules(identity_header_names names);

    /// A configured identity header name, a claims_to_headers target, or a strip_prefixes match,
    /// ASCII case-insensitive and with '_' equal to '-' (CGI-style upstreams read them alike).
    bool is_identity_header(std::string_view name) const;

    /// True when an incoming header must not be forwarded: identity header, hop-by-hop, or named
    /// in Connection (`conn_tokens` from connection_tokens()). Connection can never remove the
    /// framing and routing headers Host and Content-Length (that would be a smuggling vector).
    bool must_remove(std::string_view name, std::span<const std::string> conn_tokens) const;

    /// The verified identity as (header name, value) pairs: subject, machine_id (machines only),
    /// token_id, token_type, scopes (comma-separated, omitted when empty), claims (compact ASCII
    /// JSON, omitted when null/empty object) and claims_to_headers (string claims verbatim, other
    /// values as compact JSON; absent claims add nothing). Values never contain CR, LF or NUL.
    std::vector<std::pair<std::string, std::string>> identity_headers(const identity& id) const;

    /// The same pairs, in the same order, handed to `emit(name, value)` one at a time without
    /// copying: values that are already header-safe are views of the identity, the others are
    /// built in `scratch` (reused storage; a view into it is valid only during its emit call).
    /// This is the per-request form: no allocation once `scratch` has grown.
    void for_each_identity_header(
        const identity& id, std::string& scratch,
        const std::function<void(std::string_view, std::string_view)>& emit) const;

    const identity_header_names& names() const { return names_; }

private:
    identity_header_names names_;
    std::vector<std::string> exact_lower_;   // configured names, lower-cased
    std::vector<std::string> prefix_lower_;  // strip_prefixes, lower-cased
};

}  // namespace clerk::core
