#include "proxy/auth/clerk_verifier.hpp"

#include "core/clerk_response.hpp"
#include "proxy/logging.hpp"

#include <spdlog/logger.h>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <random>

namespace clerk::proxy {
namespace {

using core::clerk_outcome;
using core::clerk_outcome_kind;
using core::map_verify_response;

using steady = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> clerk_log() {
    return get_logger("clerk");
}

long long steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now().time_since_epoch())
        .count();
}

/// True at most once per `every_ms` across threads (userver LOG_LIMITED, simplified).
bool log_allowed(std::atomic<long long>& last, long long every_ms) {
    long long now = steady_ms();
    long long prev = last.load(std::memory_order_relaxed);
    return now - prev >= every_ms && last.compare_exchange_strong(prev, now);
}

verification unavailable(std::string_view why) {
    return verification{verification::status::unavailable, why, nullptr, false};
}

}  // namespace

clerk_verifier::clerk_verifier(std::shared_ptr<clerk_api> api, const config::clerk_config& cfg,
                               metrics& m, const core::clock& clk)
    : api_(std::move(api)), cfg_(cfg), metrics_(m), clock_(clk) {}

std::chrono::milliseconds clerk_verifier::backoff(int attempt) {
    thread_local std::minstd_rand rng{std::random_device{}()};
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    double base = 50.0 * static_cast<double>(1LL << std::min(attempt, 10));
    return std::chrono::milliseconds(static_cast<long long>(base * jitter(rng)));
}

std::chrono::steady_clock::duration clerk_verifier::budget(const config::clerk_config& cfg) {
    const auto attempts = static_cast<long>(std::max(cfg.retries, 0)) + 1;
    const auto total = cfg.timeout * attempts + std::chrono::milliseconds(250) * (attempts - 1);
    return std::min<std::chrono::steady_clock::duration>(total, std::chrono::seconds(30));
}

void clerk_verifier::log_key_rejected(int status) {
    // Name the key, never its value.
    if (log_allowed(last_key_log_ms_, 10000)) {
        const char* key =
            cfg_.machine_secret_key.empty() ? "clerk.secret_key" : "clerk.machine_secret_key";
        clerk_log()->error(
            "Clerk rejected our credentials (HTTP {}): check {}; verification is unavailable "
            "until it is fixed (rate-limited message)",
            status, key);
    }
}

void clerk_verifier::log_failure(std::string_view what, int attempts) {
    if (log_allowed(last_fail_log_ms_, 5000)) {
        clerk_log()->warn("Clerk verification failed after {} attempt(s): {} (rate-limited)",
                          attempts, what);
    }
}

net::awaitable<verification> clerk_verifier::verify_m2m(std::string_view token,
                                                        steady::time_point deadline) {
    co_return co_await verify(core::token_type::m2m_token, token, deadline);
}

net::awaitable<verification> clerk_verifier::verify(core::token_type type, std::string_view token,
                                                    steady::time_point deadline) {
    clerk_http_request req;
    req.verb = clerk_http_request::method::post;
    std::string_view field = "token";
    switch (type) {
        case core::token_type::api_key:
            req.path = "/api_keys/verify";
            field = "secret";
            req.bearer = cfg_.secret_key;
            break;
        case core::token_type::oauth_token:
            req.path = "/oauth_applications/access_tokens/verify";
            field = "access_token";
            req.bearer = cfg_.secret_key;
            break;
        default:
            req.path = "/m2m_tokens/verify";
            req.bearer = cfg_.verify_key();
            break;
    }
    // replace: a token that is not valid UTF-8 cannot be a Clerk token; it is sent mangled
    // (and rejected by Clerk) instead of throwing.
    req.body = nlohmann::json{{field, token}}.dump(-1, ' ', false,
                                                   nlohmann::json::error_handler_t::replace);

    const int max_retries = std::max(0, cfg_.retries);
    std::string_view last = "deadline";
    for (int attempt = 0;; ++attempt) {
        auto start = steady::now();
        if (start >= deadline) {
            log_failure(last, attempt);
            co_return unavailable(last);
        }
        auto call_deadline = std::min(deadline, start + cfg_.timeout);
        clerk_http_reply reply = co_await api_->call(req, call_deadline);
        std::chrono::duration<double> took = steady::now() - start;
        metrics_.clerk_request(reply.status, took.count());
        metrics_.clerk_verification(type, reply.status);

        clerk_outcome o;
        if (reply.status == 0) {
            o.kind = clerk_outcome_kind::retryable;
            o.reason = to_string(reply.error);
        } else {
            o = map_verify_response(reply.status, reply.retry_after, reply.body, clock_.now(),
                                    type);
        }

        std::chrono::milliseconds delay{0};
        switch (o.kind) {
            case clerk_outcome_kind::valid:
                co_return verification{verification::status::valid, "", std::move(o.id), true};
            case clerk_outcome_kind::invalid:
                co_return verification{verification::status::invalid, o.reason, nullptr, true};
            case clerk_outcome_kind::key_rejected:
                log_key_rejected(reply.status);
                co_return unavailable(o.reason);
            case clerk_outcome_kind::unexpected:
                log_failure(o.reason, attempt + 1);
                co_return unavailable(o.reason);
            case clerk_outcome_kind::rate_limited:
                delay = o.retry_after
                            ? std::chrono::duration_cast<std::chrono::milliseconds>(*o.retry_after)
                            : backoff(attempt);
                break;
            case clerk_outcome_kind::retryable:
                delay = backoff(attempt);
                break;
        }
        last = o.reason;
        if (attempt >= max_retries || steady::now() + delay >= deadline) {
            log_failure(last, attempt + 1);
            co_return unavailable(last);
        }
        net::steady_timer timer(co_await net::this_coro::executor, delay);
        boost::system::error_code ec;
        co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
}

}  // namespace clerk::proxy
