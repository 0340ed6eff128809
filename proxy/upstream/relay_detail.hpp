#pragma once
// INTERNAL to proxy/upstream/relay.cpp and response_relay.cpp: the relay of one forwarded
// exchange. relay.cpp holds the request side (connection, request head, Expect: 100-continue,
// request body, the one-retry rule); response_relay.cpp the response side (response head,
// response body, WebSocket switch, returning the connection to the pool).
#include "core/auth_decision.hpp"
#include "core/transfer_budget.hpp"
#include "proxy/http/exchange.hpp"
#include "proxy/http/http_wire.hpp"
#include "proxy/metrics.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

namespace spdlog {
class logger;
}  // namespace spdlog

namespace clerk::proxy::relay_detail {

using boost::system::error_code;
using clock = std::chrono::steady_clock;

/// RFC 9110 §9.2.2. Only these may be sent again after the upstream may have seen them.
inline bool is_idempotent(std::string_view m) {
    static constexpr std::array<std::string_view, 6> idempotent{"GET", "HEAD",   "OPTIONS",
                                                                "PUT", "DELETE", "TRACE"};
    return std::find(idempotent.begin(), idempotent.end(), m) != idempotent.end();
}

/// Fetched once: get_logger() takes a lock and a map lookup, too much for every request.
const std::shared_ptr<spdlog::logger>& upstream_log();

/// What a phase of the relay came to: one value, nothing left on the side.
struct outcome {
    enum class next : std::uint8_t {
        go_on,        ///< on to the next phase
        done,         ///< the response (or tunnel) went to the client
        client_gone,  ///< the client connection broke or was cut
        refuse,       ///< nothing of a response was written: the proxy answers `refusal`
        retry,        ///< as refuse, unless the one-retry rule allows a fresh connection
    };
    next then = next::go_on;
    core::auth_decision refusal{};  ///< refuse, retry: the §6 answer and its reason

    static outcome go_on() { return {}; }
    static outcome done() { return {next::done, {}}; }
    static outcome client_gone() { return {next::client_gone, {}}; }
    static outcome refuse(core::decision_kind k, std::string_view reason = "") {
        return {next::refuse, {k, reason}};
    }
    /// The upstream connection failed before anything of the response arrived: sent again on a
    /// fresh connection when `retry` (the one-retry rule), else a 502 with `reason`.
    static outcome upstream_failed(bool retry, std::string_view reason) {
        return {retry ? next::retry : next::refuse,
                {core::decision_kind::upstream_unavailable, reason}};
    }
};

/// One forwarded exchange. Phases are short coroutines run in order by run(), each returning
/// an outcome.
class relay {
public:
    relay(exchange& ex, upstream_pool& pool, metrics& m)
        : ex_(ex), pool_(pool), m_(m), cfg_(*ex.rt.cfg), log_(upstream_log()) {}

    task<forward_result> run();

private:
    /// One write of `prefix` (a head, or nothing), then `size` bytes of the body chunk, framed
    /// as an HTTP/1.1 chunk when `chunked` (followed by the last chunk when `last`): gathered
    /// into a single writev. The operation is returned to be awaited (`auto [ec, n] = co_await
    /// ...`) before the next call: the chunk framing lives in the relay until it completes.
    auto write_body_piece(any_stream& s, std::size_t size, bool chunked, std::string_view prefix,
                          bool last) {
        frame_ = chunked ? chunk_frame(size, last) : chunk_frame(0, false);
        const std::array<net::const_buffer, 4> pieces{
            net::buffer(prefix), net::buffer(frame_.head()), net::buffer(ex_.chunk.get(), size),
            net::buffer(frame_.tail())};
        return net::async_write(s, pieces, deferred_tuple);
    }

    // Request side (relay.cpp).
    void build_request_head();
    task<outcome> exchange_once();
    task<outcome> await_continue();
    task<outcome> send_body();

    /// The one-retry rule: a request that nothing was consumed for and that may be repeated.
    bool can_retry() const { return !ex_.framing.has_body() && is_idempotent(ex_.method); }

    // Response side (response_relay.cpp).
    void prepare_response_parser();
    void note_response_head();
    task<outcome> read_response_head();
    task<outcome> switch_protocols();
    task<outcome> send_response();
    error_code parse_buffered_body(response_parser<http::buffer_body>& rp, std::size_t& got);
    void release_if_done();
    void finish_upstream(bool reusable);
    void discard_upstream() { finish_upstream(false); }

    /// Slow-client bound of one body transfer (limits.min_body_rate, core/transfer_budget.hpp):
    /// each client read or write waits at most idle_timeout, and all of them together at most
    /// header_timeout + bytes / min_body_rate.
    core::transfer_budget client_budget() const {
        return core::transfer_budget(cfg_.limits.header_timeout, cfg_.limits.min_body_rate,
                                     cfg_.limits.idle_timeout);
    }

    exchange& ex_;
    upstream_pool& pool_;
    metrics& m_;
    const config::config& cfg_;
    const std::shared_ptr<spdlog::logger>& log_;
    upstream_pool::connection conn_;
    std::optional<response_parser<http::buffer_body>> res_parser_;
    clock::time_point started_;
    bool expect_continue_ = false;
    bool early_final_ = false;
    chunk_frame frame_{0, false};  ///< the chunk framing being written (write_body_piece)
};

}  // namespace clerk::proxy::relay_detail
