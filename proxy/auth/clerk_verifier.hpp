#pragma once
// One opaque M2M token verification against Clerk, with the retry policy of docs/reference.md §4:
// 429 honours Retry-After when it fits the deadline, 5xx / timeouts / connection errors /
// malformed 200s retry with jittered exponential backoff up to clerk.retries, 401/403 mean our
// own key is wrong. No cache and no single-flight here (the authenticator adds those).
#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/identity.hpp"
#include "proxy/auth/clerk_client.hpp"
#include "proxy/metrics.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string_view>

namespace clerk::proxy {

/// The result of a verification, before caching.
struct verification {
    enum class status {
        valid,        ///< `id` set; cache positively
        invalid,      ///< definitive rejection; `cacheable` says whether to remember it
        unavailable,  ///< Clerk (or the JWKS) could not answer: 503, or stale if allowed
    };
    status st = status::unavailable;
    std::string_view reason;  ///< static string
    std::shared_ptr<const core::identity> id;
    bool cacheable = true;  ///< for invalid: false for transient refusals (e.g. nbf in future)
};

/// Thread safety: verify() may run concurrently from any thread/strand. Lifetime: `api`, `m`
/// and `clk` must outlive every verify() call.
class clerk_verifier {
public:
    clerk_verifier(std::shared_ptr<clerk_api> api, const config::clerk_config& cfg, metrics& m,
                   const core::clock& clk);

    /// POST /m2m_tokens/verify with retries; completes by `deadline` (plus slack). Never
    /// throws for network outcomes. The token is sent in the body and nowhere else.
    /// An opaque token of `type` (m2m_token, api_key, oauth_token): its BAPI verify endpoint,
    /// body field and key (docs/reference.md §12: API keys and OAuth tokens with the instance
    /// secret key, M2M tokens with the machine key when set).
    net::awaitable<verification> verify(core::token_type type, std::string_view token,
                                        std::chrono::steady_clock::time_point deadline);
    net::awaitable<verification> verify_m2m(std::string_view token,
                                            std::chrono::steady_clock::time_point deadline);

    /// Base backoff before retry `attempt` (0-based): 50ms * 2^attempt, jittered x[0.5, 1.5).
    static std::chrono::milliseconds backoff(int attempt);

    /// How long one whole verification may take, retries included: clerk.retries + 1 calls of
    /// clerk.timeout and up to 250 ms of backoff between them, at most 30 s. A request's
    /// deadline (request_auth) is now + this, so a Clerk outage costs a caller at most that.
    static std::chrono::steady_clock::duration budget(const config::clerk_config& cfg);

    std::shared_ptr<clerk_api> api() const { return api_; }

private:
    void log_key_rejected(int status);
    void log_failure(std::string_view what, int attempts);

    std::shared_ptr<clerk_api> api_;
    config::clerk_config cfg_;
    metrics& metrics_;
    const core::clock& clock_;
    std::atomic<long long> last_key_log_ms_{-1000000};
    std::atomic<long long> last_fail_log_ms_{-1000000};
};

}  // namespace clerk::proxy
