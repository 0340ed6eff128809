#pragma once
// Process-wide metrics (docs/reference.md §7), lock-free counters rendered as Prometheus text
// 0.0.4. Label values are fixed enums or HTTP status codes: never a token, subject or path.
#include "core/auth_decision.hpp"
#include "core/token_type.hpp"
#include "core/verification_cache.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace clerk::proxy {

/// Fixed-bucket histogram (seconds). Thread safety: observe() from any thread.
class histogram {
public:
    static constexpr std::array<double, 14> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    void observe(double seconds);
    void render(std::string& out, const char* name, const char* help) const;

private:
    std::array<std::atomic<std::uint64_t>, bounds.size() + 1> counts_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_micros_{0};
};

/// Thread safety: every method may be called from any thread.
class metrics {
public:
    void request_done(int status);                 ///< clerk_proxy_requests_total{code}
    void auth_decision(core::decision_kind kind);  ///< ..._auth_decisions_total{result}
    /// ..._auth_decisions_total{result} and, for a known token type,
    /// clerk_proxy_auth_decisions_by_type_total{token_type,result}.
    void auth_decision(core::decision_kind kind, std::optional<core::token_type> type);
    /// clerk_proxy_clerk_verifications_total{token_type,status}: one verification call to
    /// Clerk (not JWKS fetches); status as for clerk_request.
    void clerk_verification(core::token_type type, int status);
    void cache_lookup(core::cache_result r);  ///< ..._cache_lookups_total{result}
    /// clerk_proxy_clerk_requests_total{status}: an HTTP status, or 0 for a transport error /
    /// timeout (rendered as status="error"); `seconds` goes to the duration histogram.
    void clerk_request(int status, double seconds);
    void upstream_duration(double seconds);
    void connection_opened();
    void connection_closed();
    std::int64_t active_connections() const;
    enum class shared_result { hit, miss, error };
    void shared_cache_lookup(shared_result r);  ///< clerk_proxy_shared_cache_lookups_total
    void shared_cache_write(bool ok);           ///< clerk_proxy_shared_cache_writes_total
    void shared_cache_bad_entry();              ///< clerk_proxy_shared_cache_rejected_entries_total
    void tunnel_opened();                       ///< clerk_proxy_websocket_tunnels (gauge)
    void tunnel_closed();
    void http2_connection_opened();  ///< clerk_proxy_http2_connections (gauge)
    void http2_connection_closed();
    void http2_request();  ///< clerk_proxy_http2_requests_total (also in requests_total)
    std::int64_t websocket_tunnels() const;
    /// Source of clerk_proxy_cache_entries (set by the server; reads the live cache).
    void set_cache_entries_source(std::function<std::size_t()> f);

    std::string render() const;

    static metrics& global();

private:
    std::array<std::atomic<std::uint64_t>, 600> requests_{};
    std::array<std::atomic<std::uint64_t>, 16> decisions_{};
    static constexpr std::size_t token_types = 4;
    std::array<std::array<std::atomic<std::uint64_t>, 16>, token_types> typed_decisions_{};
    std::array<std::array<std::atomic<std::uint64_t>, 600>, token_types> verifications_{};
    std::array<std::atomic<std::uint64_t>, 4> cache_{};
    std::array<std::atomic<std::uint64_t>, 600> clerk_{};
    std::atomic<std::int64_t> active_{0};
    std::atomic<std::int64_t> tunnels_{0};
    std::atomic<std::int64_t> h2_connections_{0};
    std::atomic<std::uint64_t> h2_requests_{0};
    std::array<std::atomic<std::uint64_t>, 3> shared_lookups_{};
    std::array<std::atomic<std::uint64_t>, 2> shared_writes_{};
    std::atomic<std::uint64_t> shared_rejected_{0};
    histogram clerk_latency_;
    histogram upstream_latency_;
    std::function<std::size_t()> cache_entries_;
};

}  // namespace clerk::proxy
