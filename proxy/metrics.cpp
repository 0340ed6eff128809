#include "proxy/metrics.hpp"

#include "core/problem.hpp"

#include <charconv>
#include <cmath>
#include <mutex>

namespace clerk::proxy {
namespace {

// Relaxed ordering everywhere: counters are independent and only need eventual visibility
// when scraped.
constexpr auto relaxed = std::memory_order_relaxed;

/// Shortest text that reads back as the same double ("0.0005", "2.5", "20.003").
std::string format_double(double v) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

/// The `result` label: "allow", or the response's `error` (core/problem.cpp, the one table).
std::string_view decision_label(core::decision_kind k) {
    return k == core::decision_kind::allow ? std::string_view("allow") : core::problem_for(k).error;
}

// The results that are always printed (as 0), so dashboards and alerts find the series.
constexpr core::decision_kind auth_results[] = {core::decision_kind::allow,
                                                core::decision_kind::missing_token,
                                                core::decision_kind::invalid_request,
                                                core::decision_kind::invalid_token,
                                                core::decision_kind::insufficient_scope,
                                                core::decision_kind::auth_unavailable};

constexpr core::cache_result cache_results[] = {core::cache_result::hit, core::cache_result::miss,
                                                core::cache_result::negative_hit,
                                                core::cache_result::stale};

std::size_t clamp_status(int status, std::size_t size) {
    return (status >= 0 && static_cast<std::size_t>(status) < size)
               ? static_cast<std::size_t>(status)
               : 0;
}

void header(std::string& out, const char* name, const char* help, const char* type) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

std::mutex cache_source_mu;

}  // namespace

void histogram::observe(double seconds) {
    if (!(seconds >= 0)) {  // NaN and negatives count as 0
        seconds = 0;
    }
    std::size_t i = 0;
    while (i < bounds.size() && seconds > bounds[i]) {
        ++i;
    }
    counts_[i].fetch_add(1, relaxed);
    count_.fetch_add(1, relaxed);
    sum_micros_.fetch_add(static_cast<std::uint64_t>(std::llround(seconds * 1e6)), relaxed);
}

void histogram::render(std::string& out, const char* name, const char* help) const {
    header(out, name, help, "histogram");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        cumulative += counts_[i].load(relaxed);
        out += name;
        out += "_bucket{le=\"";
        out += format_double(bounds[i]);
        out += "\"} ";
        out += std::to_string(cumulative);
        out += '\n';
    }
    cumulative += counts_[bounds.size()].load(relaxed);
    out += name;
    out += "_bucket{le=\"+Inf\"} ";
    out += std::to_string(cumulative);
    out += '\n';
    out += name;
    out += "_sum ";
    out += format_double(static_cast<double>(sum_micros_.load(relaxed)) / 1e6);
    out += '\n';
    out += name;
    out += "_count ";
    out += std::to_string(count_.load(relaxed));
    out += '\n';
}

void metrics::request_done(int status) {
    requests_[clamp_status(status, requests_.size())].fetch_add(1, relaxed);
}

void metrics::auth_decision(core::decision_kind kind) {
    const auto i = static_cast<std::size_t>(kind);
    if (i < decisions_.size()) {
        decisions_[i].fetch_add(1, relaxed);
    }
}

void metrics::auth_decision(core::decision_kind kind, std::optional<core::token_type> type) {
    auth_decision(kind);
    const auto i = static_cast<std::size_t>(kind);
    if (type && static_cast<std::size_t>(*type) < token_types && i < decisions_.size()) {
        typed_decisions_[static_cast<std::size_t>(*type)][i].fetch_add(1, relaxed);
    }
}

void metrics::clerk_verification(core::token_type type, int status) {
    const auto t = static_cast<std::size_t>(type);
    if (t < token_types) {
        verifications_[t][clamp_status(status, verifications_[t].size())].fetch_add(1, relaxed);
    }
}

void metrics::cache_lookup(core::cache_result r) {
    const auto i = static_cast<std::size_t>(r);
    if (i < cache_.size()) {
        cache_[i].fetch_add(1, relaxed);
    }
}

void metrics::clerk_request(int status, double seconds) {
    clerk_[clamp_status(status, clerk_.size())].fetch_add(1, relaxed);
    clerk_latency_.observe(seconds);
}

void metrics::upstream_duration(double seconds) {
    upstream_latency_.observe(seconds);
}
void metrics::connection_opened() {
    active_.fetch_add(1, relaxed);
}
void metrics::connection_closed() {
    active_.fetch_sub(1, relaxed);
}
std::int64_t metrics::active_connections() const {
    return active_.load(relaxed);
}
void metrics::shared_cache_lookup(shared_result r) {
    shared_lookups_[static_cast<std::size_t>(r)].fetch_add(1, relaxed);
}
void metrics::shared_cache_write(bool ok) {
    shared_writes_[ok ? 0 : 1].fetch_add(1, relaxed);
}
void metrics::shared_cache_bad_entry() {
    shared_rejected_.fetch_add(1, relaxed);
}
void metrics::tunnel_opened() {
    tunnels_.fetch_add(1, relaxed);
}
void metrics::tunnel_closed() {
    tunnels_.fetch_sub(1, relaxed);
}
void metrics::http2_connection_opened() {
    h2_connections_.fetch_add(1, relaxed);
}
void metrics::http2_connection_closed() {
    h2_connections_.fetch_sub(1, relaxed);
}
void metrics::http2_request() {
    h2_requests_.fetch_add(1, relaxed);
}
std::int64_t metrics::websocket_tunnels() const {
    return tunnels_.load(relaxed);
}

void metrics::set_cache_entries_source(std::function<std::size_t()> f) {
    std::lock_guard lock(cache_source_mu);
    cache_entries_ = std::move(f);
}

std::string metrics::render() const {
    std::string out;
    out.reserve(4096);

    header(out, "clerk_proxy_requests_total", "Requests answered, by HTTP status code.", "counter");
    bool any = false;
    for (std::size_t code = 100; code < requests_.size(); ++code) {
        const auto v = requests_[code].load(relaxed);
        if (v == 0) {
            continue;
        }
        any = true;
        out += "clerk_proxy_requests_total{code=\"" + std::to_string(code) + "\"} " +
               std::to_string(v) + '\n';
    }
    if (!any) {
        out += "clerk_proxy_requests_total{code=\"200\"} 0\n";
    }

    header(out, "clerk_proxy_auth_decisions_total", "Authentication decisions, by result.",
           "counter");
    for (auto k : auth_results) {
        out += "clerk_proxy_auth_decisions_total{result=\"";
        out += decision_label(k);
        out +=
            "\"} " + std::to_string(decisions_[static_cast<std::size_t>(k)].load(relaxed)) + '\n';
    }

    header(out, "clerk_proxy_auth_decisions_by_type_total",
           "Authentication decisions for classified tokens, by token type and result.", "counter");
    for (std::size_t t = 0; t < token_types; ++t) {
        for (auto k : auth_results) {
            out += "clerk_proxy_auth_decisions_by_type_total{token_type=\"";
            out += core::to_string(static_cast<core::token_type>(t));
            out += "\",result=\"";
            out += decision_label(k);
            out += "\"} " +
                   std::to_string(typed_decisions_[t][static_cast<std::size_t>(k)].load(relaxed)) +
                   '\n';
        }
    }

    header(out, "clerk_proxy_cache_lookups_total", "Verification cache lookups, by result.",
           "counter");
    for (auto r : cache_results) {
        out += "clerk_proxy_cache_lookups_total{result=\"";
        out += core::to_string(r);
        out += "\"} " + std::to_string(cache_[static_cast<std::size_t>(r)].load(relaxed)) + '\n';
    }

    header(out, "clerk_proxy_cache_entries", "Positive entries in the verification cache.",
           "gauge");
    std::size_t entries = 0;
    {
        std::lock_guard lock(cache_source_mu);
        if (cache_entries_) {
            entries = cache_entries_();
        }
    }
    out += "clerk_proxy_cache_entries " + std::to_string(entries) + '\n';

    header(out, "clerk_proxy_clerk_requests_total",
           "Calls to the Clerk Backend API, by HTTP status (error: transport failure).", "counter");
    any = false;
    for (std::size_t code = 0; code < clerk_.size(); ++code) {
        const auto v = clerk_[code].load(relaxed);
        if (v == 0) {
            continue;
        }
        any = true;
        out += "clerk_proxy_clerk_requests_total{status=\"" +
               (code == 0 ? std::string("error") : std::to_string(code)) + "\"} " +
               std::to_string(v) + '\n';
    }
    if (!any) {
        out += "clerk_proxy_clerk_requests_total{status=\"200\"} 0\n";
    }

    header(out, "clerk_proxy_clerk_verifications_total",
           "Token verification calls to the Clerk Backend API, by token type and HTTP status "
           "(error: transport failure).",
           "counter");
    any = false;
    for (std::size_t t = 0; t < token_types; ++t) {
        for (std::size_t code = 0; code < verifications_[t].size(); ++code) {
            const auto v = verifications_[t][code].load(relaxed);
            if (v == 0) {
                continue;
            }
            any = true;
            out += "clerk_proxy_clerk_verifications_total{token_type=\"";
            out += core::to_string(static_cast<core::token_type>(t));
            out += "\",status=\"" + (code == 0 ? std::string("error") : std::to_string(code)) +
                   "\"} " + std::to_string(v) + '\n';
        }
    }
    if (!any) {
        out += "clerk_proxy_clerk_verifications_total{token_type=\"m2m_token\",status=\"200\"} 0\n";
    }

    clerk_latency_.render(out, "clerk_proxy_clerk_request_duration_seconds",
                          "Duration of Clerk Backend API calls.");
    upstream_latency_.render(out, "clerk_proxy_upstream_request_duration_seconds",
                             "Time from forwarding a request to receiving the upstream's "
                             "response headers.");

    header(out, "clerk_proxy_active_connections", "Open downstream connections.", "gauge");
    out += "clerk_proxy_active_connections " + std::to_string(active_connections()) + '\n';
    header(out, "clerk_proxy_shared_cache_lookups_total",
           "Shared-cache (Redis) lookups on a local miss, by result.", "counter");
    static constexpr const char* lookup_names[] = {"hit", "miss", "error"};
    for (std::size_t i = 0; i < shared_lookups_.size(); ++i) {
        out += "clerk_proxy_shared_cache_lookups_total{result=\"";
        out += lookup_names[i];
        out += "\"} " + std::to_string(shared_lookups_[i].load(relaxed)) + '\n';
    }
    header(out, "clerk_proxy_shared_cache_writes_total",
           "Shared-cache (Redis) writes of Clerk results, by result.", "counter");
    out += "clerk_proxy_shared_cache_writes_total{result=\"ok\"} " +
           std::to_string(shared_writes_[0].load(relaxed)) + '\n';
    out += "clerk_proxy_shared_cache_writes_total{result=\"error\"} " +
           std::to_string(shared_writes_[1].load(relaxed)) + '\n';
    header(out, "clerk_proxy_shared_cache_rejected_entries_total",
           "Shared-cache entries that failed their MAC check (forged or foreign).", "counter");
    out += "clerk_proxy_shared_cache_rejected_entries_total " +
           std::to_string(shared_rejected_.load(relaxed)) + '\n';
    header(out, "clerk_proxy_websocket_tunnels", "Open WebSocket tunnels.", "gauge");
    out += "clerk_proxy_websocket_tunnels " + std::to_string(websocket_tunnels()) + '\n';
    header(out, "clerk_proxy_http2_connections", "Open client connections speaking HTTP/2.",
           "gauge");
    out += "clerk_proxy_http2_connections " + std::to_string(h2_connections_.load(relaxed)) + '\n';
    header(out, "clerk_proxy_http2_requests_total",
           "Requests (streams) answered over HTTP/2; requests_total counts them too.", "counter");
    out += "clerk_proxy_http2_requests_total " + std::to_string(h2_requests_.load(relaxed)) + '\n';
    return out;
}

metrics& metrics::global() {
    static metrics m;
    return m;
}

}  // namespace clerk::proxy
