#include "proxy/upstream/relay.hpp"

#include "core/transfer_budget.hpp"
#include "proxy/h2/h1_to_h2.hpp"
#include "proxy/http/http_wire.hpp"
#include "proxy/http/message_rules.hpp"
#include "proxy/logging.hpp"
#include "proxy/upstream/tunnel.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <charconv>

namespace clerk::proxy {
namespace {

using boost::system::error_code;
using clock = std::chrono::steady_clock;

/// RFC 9110 §9.2.2. Only these may be sent again after the upstream may have seen them.
bool is_idempotent(std::string_view m) {
    static constexpr std::array<std::string_view, 6> idempotent{"GET", "HEAD",   "OPTIONS",
                                                                "PUT", "DELETE", "TRACE"};
    return std::find(idempotent.begin(), idempotent.end(), m) != idempotent.end();
}

/// Fetched once: get_logger() takes a lock and a map lookup, too much for every request.
const std::shared_ptr<spdlog::logger>& upstream_log() {
    static const auto log = get_logger("upstream");
    return log;
}

double ms_since(clock::time_point t) {
    return std::chrono::duration<double, std::milli>(clock::now() - t).count();
}

enum class step { ok, retry, fail };

/// One forwarded exchange. Phases are short coroutines run in order by run(); `failure_` says
/// what to answer when a phase returns step::fail before the response started.
class relay {
public:
    relay(exchange& ex, upstream_pool& pool, metrics& m)
        : ex_(ex), pool_(pool), m_(m), cfg_(*ex.rt.cfg), log_(upstream_log()) {}

    task<core::auth_decision> run() {
        build_request_head();
        started_ = clock::now();
        for (int attempt = 0;; ++attempt) {
            // A pooled connection is taken without suspending; a new one is connected.
            error_code ec;
            if (attempt > 0 || !pool_.take_idle(conn_, can_retry())) {
                ec = co_await pool_.connect(conn_);
            }
            if (ec) {
                log_->warn("[r{}] upstream connect failed: {}", ex_.request_id, ec.message());
                co_return core::auth_decision{
                    core::decision_kind::upstream_unavailable,
                    ec == beast::error::timeout ? "connect_timeout" : "connect_failed"};
            }
            ex_.up_buffer.clear();
            const step s = co_await exchange_once();
            if (s == step::ok) {
                co_return core::auth_decision{};
            }
            const bool reused = conn_.reused;
            discard_upstream();
            if (s == step::retry && attempt == 0 && reused) {
                log_->debug("[r{}] pooled upstream connection was closed; retrying on a new one",
                            ex_.request_id);
                continue;
            }
            if (s == step::retry) {
                failure_ = {core::decision_kind::upstream_unavailable, "upstream_closed"};
            }
            co_return failure_;
        }
    }

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

    // --- phase: the upstream request head (target, rewritten headers, framing), serialized once
    // into the connection's wire buffer (kept for a retry on a fresh connection)
    void build_request_head() {
        const auto& in = ex_.parser.get();
        auto fp = forward_params_for(ex_.rt.rules, cfg_, ex_.id.get(), ex_.peer_ip,
                                     ex_.downstream_tls, ex_.request_id);
        fp.websocket_upgrade = ex_.websocket;
        auto& head = ex_.wire;
        head.clear();
        head += in.method_string();
        head += ' ';
        head += cfg_.upstream.base_path;
        head += ex_.target.path;
        if (ex_.target.has_query) {
            head += '?';
            head += ex_.target.query;
        }
        head += " HTTP/1.1\r\n";
        append_request_headers(in, fp, head, ex_.scratch);
        if (ex_.framing.chunked) {
            head += "Transfer-Encoding: chunked\r\n";
        } else if (ex_.framing.content_length) {
            char digits[24];
            const auto r =
                std::to_chars(digits, digits + sizeof digits, *ex_.framing.content_length);
            head += "Content-Length: ";
            head.append(digits, r.ptr);
            head += "\r\n";
        }
        head += "\r\n";
        const auto expect = in[http::field::expect];
        expect_continue_ = ex_.framing.has_body() && beast::iequals(expect, "100-continue");
    }

    task<step> exchange_once() {
        // The head (and an empty body) upstream.
        auto& up = *conn_.stream;
        up.expires_after(cfg_.upstream.timeout);
        if (auto [ec, n] = co_await net::async_write(up, net::buffer(ex_.wire), deferred_tuple);
            ec) {
            // Nothing of the client's body was consumed and the upstream cannot have a complete
            // request: sending it again on a fresh connection is safe for any method.
            failure_ = {core::decision_kind::upstream_unavailable, "upstream_write_failed"};
            co_return conn_.reused ? step::retry : step::fail;
        }
        if (expect_continue_) {
            if (auto s = co_await await_continue(); s != step::ok) {
                co_return s;
            }
        }
        if (!early_final_ && ex_.framing.has_body()) {
            if (auto s = co_await send_body(); s != step::ok) {
                co_return s;
            }
        }
        if (!early_final_) {
            if (auto s = co_await read_response_head(); s != step::ok) {
                co_return s;
            }
        }
        co_await send_response();
        co_return step::ok;
    }

    // --- phase: Expect: 100-continue. The upstream gets a moment to answer 100 (relayed) or a
    // final status (relayed; the body is never read). A silent upstream is treated as a 100
    // (RFC 9110 §10.1.1 lets a client proceed after a while; the proxy does it on its behalf).
    task<step> await_continue() {
        using namespace net::experimental::awaitable_operators;
        auto& up = *conn_.stream;
        const auto executor = co_await net::this_coro::executor;
        net::steady_timer timer(
            executor, std::min<clock::duration>(std::chrono::seconds(1), cfg_.upstream.timeout));
        auto r =
            co_await (up.async_wait_readable(use_task_tuple) || timer.async_wait(use_task_tuple));
        if (r.index() == 0) {
            res_parser_.emplace();
            prepare_response_parser();
            up.expires_after(cfg_.upstream.timeout);
            auto [ec, n] =
                co_await http::async_read_header(up, ex_.up_buffer, *res_parser_, deferred_tuple);
            if (ec) {
                failure_ = {core::decision_kind::upstream_unavailable, "upstream_closed"};
                co_return conn_.reused ? step::retry : step::fail;
            }
            const int st = res_parser_->get().result_int();
            if (st >= 200) {
                early_final_ = true;
                note_response_head();
                co_return step::ok;
            }
            res_parser_.reset();
        }
        ex_.client.expires_after(cfg_.limits.idle_timeout);
        static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [ec, n] = co_await net::async_write(ex_.client, net::buffer(cont), deferred_tuple);
        if (ec) {
            ex_.client_failed = true;
            failure_ = {core::decision_kind::bad_request, "client_closed"};
            co_return step::fail;
        }
        co_return step::ok;
    }

    // --- phase: stream the request body client -> upstream in bounded chunks
    task<step> send_body() {
        auto& p = ex_.parser;
        auto& up = *conn_.stream;
        const std::uint64_t limit = cfg_.limits.max_body_bytes;
        std::uint64_t total = 0;
        auto budget = client_budget();
        while (!p.is_done()) {
            p.get().body().data = ex_.chunk.get();
            p.get().body().size = body_chunk_bytes;
            ex_.client.expires_after(budget.next_timeout());
            const auto t0 = clock::now();
            auto [ec, n] =
                co_await http::async_read_some(ex_.client, ex_.client_buffer, p, deferred_tuple);
            if (ec == http::error::need_buffer) {
                ec = {};
            }
            if (ec) {
                // A malformed chunk still gets an answer; a broken, idle or too slow (slowloris
                // body) connection cannot: it is cut.
                ex_.client_failed = !is_parse_error(ec);
                failure_ = {core::decision_kind::bad_request,
                            ec == beast::error::timeout ? "client_too_slow" : "invalid_body"};
                if (ec == beast::error::timeout) {
                    log_->info("[r{}] request body: client too slow ({} bytes), cut",
                               ex_.request_id, total);
                }
                co_return step::fail;
            }
            const std::size_t got = body_chunk_bytes - p.get().body().size;
            budget.account(clock::now() - t0, got);
            total += got;
            if (limit > 0 && total > limit) {
                failure_ = {core::decision_kind::body_too_large, ""};
                co_return step::fail;
            }
            if (got == 0) {
                continue;
            }
            up.expires_after(cfg_.upstream.timeout);
            auto [wec, wn] = co_await write_body_piece(up, got, ex_.framing.chunked, {}, false);
            if (wec) {
                failure_ = {core::decision_kind::upstream_unavailable, "upstream_write_failed"};
                co_return step::fail;
            }
        }
        ex_.body_consumed = true;
        error_code ec;
        if (ex_.framing.chunked) {
            up.expires_after(cfg_.upstream.timeout);
            std::tie(ec, std::ignore) =
                co_await net::async_write(up, net::buffer(last_chunk), deferred_tuple);
        }
        if (ec) {
            failure_ = {core::decision_kind::upstream_unavailable, "upstream_write_failed"};
            co_return step::fail;
        }
        co_return step::ok;
    }

    /// The one-retry rule: a request that nothing was consumed for and that may be repeated.
    bool can_retry() const { return !ex_.framing.has_body() && is_idempotent(ex_.method); }

    void prepare_response_parser() {
        res_parser_->header_limit(64 * 1024);
        res_parser_->body_limit(boost::none);
        if (ex_.method == "HEAD") {
            res_parser_->skip(true);
        }
    }

    void note_response_head() {
        ex_.upstream_ms = ms_since(started_);
        m_.upstream_duration(*ex_.upstream_ms / 1000.0);
    }

    // --- phase: wait for the response head (upstream.timeout), skipping interim responses
    task<step> read_response_head() {
        auto& up = *conn_.stream;
        for (;;) {
            res_parser_.emplace();
            prepare_response_parser();
            up.expires_after(cfg_.upstream.timeout);
            auto [ec, n] =
                co_await http::async_read_header(up, ex_.up_buffer, *res_parser_, deferred_tuple);
            if (ec == beast::error::timeout) {
                failure_ = {core::decision_kind::upstream_timeout, ""};
                co_return step::fail;
            }
            if (ec) {
                // A reused connection that the upstream closed before answering: the request may
                // or may not have been processed, so only idempotent requests without a body
                // (nothing consumed from the client) are sent again.
                const bool invalid = is_parse_error(ec);
                failure_ = {core::decision_kind::upstream_unavailable,
                            invalid ? "invalid_response" : "upstream_closed"};
                const bool retry =
                    conn_.reused && !invalid && ex_.up_buffer.size() == 0 && can_retry();
                co_return retry ? step::retry : step::fail;
            }
            const int st = res_parser_->get().result_int();
            if (st == 101) {
                if (ex_.websocket) {
                    break;  // switching protocols: the tunnel (send_response)
                }
                // A 101 nobody asked for: the connection's protocol is unknown from here on.
                failure_ = {core::decision_kind::upstream_unavailable, "upgrade_not_supported"};
                co_return step::fail;
            }
            if (st >= 200) {
                break;
            }
        }
        note_response_head();
        co_return step::ok;
    }

    // --- phase (WebSocket): the upstream switched protocols; relay its 101, then bytes both
    // ways until either side closes (docs/reference.md §13). Identity was checked at the upgrade;
    // the tunnel ends at the token's known expiration at the latest.
    task<void> switch_protocols() {
        co_await serve_upgrade(ex_, res_parser_->get(), *conn_.stream, m_);
        discard_upstream();  // never pooled: it carried the tunnel
    }

    // --- phase: relay the response upstream -> client
    task<void> send_response() {
        auto& rp = *res_parser_;
        const auto& up_res = rp.get();
        const int st = up_res.result_int();
        if (st == 101) {
            co_await switch_protocols();
            co_return;
        }
        const unsigned client_version = ex_.parser.get().version() == 10 ? 10 : 11;

        // The head is serialized straight from the upstream's fields (no intermediate header
        // container): status line, rewritten fields, then framing and Connection.
        auto& head = ex_.wire;
        head.clear();
        append_status_line(head, client_version, static_cast<unsigned>(st), up_res.reason());
        append_response_headers(up_res, ex_.request_id, head);

        bool keep = ex_.keep_alive && !ex_.registry.draining() &&
                    (!ex_.framing.has_body() || ex_.body_consumed);
        const bool no_body = ex_.method == "HEAD" || st == 204 || st == 304;
        bool chunked = false;
        if (no_body) {
            // HEAD and 304 keep the length the upstream announced for the representation.
            const auto cl = up_res.find(http::field::content_length);
            if (cl != up_res.end() && st != 204) {
                head += "Content-Length: ";
                head += cl->value();
                head += "\r\n";
            }
        } else if (const auto len = rp.content_length()) {
            char digits[24];
            const auto r = std::to_chars(digits, digits + sizeof digits, *len);
            head += "Content-Length: ";
            head.append(digits, r.ptr);
            head += "\r\n";
        } else if (client_version >= 11) {
            head += "Transfer-Encoding: chunked\r\n";
            chunked = true;
        } else {
            keep = false;  // close-delimited body for an HTTP/1.0 client
        }
        // The upstream's Connection header was dropped with the hop-by-hop ones.
        if (client_version >= 11 && !keep) {
            head += "Connection: close\r\n";
        } else if (client_version == 10 && keep) {
            head += "Connection: keep-alive\r\n";
        }
        head += "\r\n";
        ex_.keep_alive = keep;
        ex_.status = st;

        // Whatever of the body arrived with the head is parsed now, without I/O, so that a
        // small response leaves in one write (head and body gathered), not three.
        std::size_t first = 0;
        if (!no_body) {
            if (auto err = parse_buffered_body(rp, first)) {
                log_->warn("[r{}] upstream response body invalid: {}", ex_.request_id,
                           err.message());
                ex_.client_failed = true;
                discard_upstream();
                co_return;
            }
        }
        // The upstream connection goes back to the pool as soon as its response has been read
        // completely, before the last bytes are written to the client: a client that sends its
        // next request on another connection right away then finds it there.
        if (no_body || rp.is_done()) {
            release_if_done();
        }
        ex_.client.expires_after(cfg_.limits.idle_timeout);
        error_code ec;
        if (no_body) {
            std::tie(ec, std::ignore) =
                co_await net::async_write(ex_.client, net::buffer(head), deferred_tuple);
        } else {
            std::tie(ec, std::ignore) =
                co_await write_body_piece(ex_.client, first, chunked, head, rp.is_done());
            ex_.bytes += first;
        }
        if (ec) {
            ex_.client_failed = true;
            discard_upstream();
            co_return;
        }
        if (no_body || rp.is_done()) {
            co_return;
        }

        auto& up = *conn_.stream;
        auto budget = client_budget();
        while (!rp.is_done()) {
            rp.get().body().data = ex_.chunk.get();
            rp.get().body().size = body_chunk_bytes;
            up.expires_after(cfg_.upstream.timeout);
            auto [rec, rn] = co_await http::async_read_some(up, ex_.up_buffer, rp, deferred_tuple);
            if (rec && rec != http::error::need_buffer) {
                // The upstream broke mid-body: the client cannot be told, only cut off.
                log_->warn("[r{}] upstream response body incomplete: {}", ex_.request_id,
                           rec.message());
                ex_.client_failed = true;
                discard_upstream();
                co_return;
            }
            const std::size_t got = body_chunk_bytes - rp.get().body().size;
            const bool done = rp.is_done();
            if (done) {
                release_if_done();
            }
            if (got == 0 && !(done && chunked)) {
                continue;
            }
            ex_.client.expires_after(budget.next_timeout());
            const auto t0 = clock::now();
            auto [wec, wn] = co_await write_body_piece(ex_.client, got, chunked, {}, done);
            budget.account(clock::now() - t0, got);
            if (wec) {
                ex_.client_failed = true;
                if (wec == beast::error::timeout) {
                    log_->info("[r{}] response body: client too slow ({} bytes), cut",
                               ex_.request_id, ex_.bytes);
                }
                discard_upstream();
                co_return;
            }
            ex_.bytes += got;
        }
    }

    /// Parses the response body bytes already in ex_.up_buffer (read with the head) into the body
    /// chunk, without I/O; `got` is how many body bytes it holds. Stops when the chunk is full,
    /// the buffer is used up or the body is complete.
    error_code parse_buffered_body(response_parser<http::buffer_body>& rp, std::size_t& got) {
        got = 0;
        char* const chunk = ex_.chunk.get();
        while (!rp.is_done() && ex_.up_buffer.size() > 0 && got < body_chunk_bytes) {
            rp.get().body().data = chunk + got;
            rp.get().body().size = body_chunk_bytes - got;
            error_code ec;
            const std::size_t used = rp.put(ex_.up_buffer.data(), ec);
            ex_.up_buffer.consume(used);
            got = body_chunk_bytes - rp.get().body().size;
            if (ec == http::error::need_buffer || ec == http::error::need_more) {
                break;
            }
            if (ec) {
                return ec;
            }
            if (used == 0) {
                break;
            }
        }
        rp.get().body().data = nullptr;
        rp.get().body().size = 0;
        return {};
    }

    /// Slow-client bound of one body transfer (limits.min_body_rate, core/transfer_budget.hpp):
    /// each client read or write waits at most idle_timeout, and all of them together at most
    /// header_timeout + bytes / min_body_rate.
    core::transfer_budget client_budget() const {
        return core::transfer_budget(cfg_.limits.header_timeout, cfg_.limits.min_body_rate,
                                     cfg_.limits.idle_timeout);
    }

    /// Pools the upstream connection when its exchange is complete and it may be reused:
    /// response read to the end, upstream keep-alive, and our request sent completely.
    void release_if_done() {
        const auto& rp = *res_parser_;
        finish_upstream(rp.is_done() && rp.keep_alive() && !early_final_ &&
                        (!ex_.framing.has_body() || ex_.body_consumed));
    }

    void finish_upstream(bool reusable) {
        if (!conn_.stream) {
            return;
        }
        if (reusable) {
            pool_.release(std::move(conn_.stream));
        } else {
            conn_.stream->close();
        }
        conn_.stream.reset();
    }
    void discard_upstream() { finish_upstream(false); }

    exchange& ex_;
    upstream_pool& pool_;
    metrics& m_;
    const config::config& cfg_;
    const std::shared_ptr<spdlog::logger>& log_;
    upstream_pool::connection conn_;
    std::optional<response_parser<http::buffer_body>> res_parser_;
    core::auth_decision failure_{core::decision_kind::upstream_unavailable, ""};
    clock::time_point started_;
    bool expect_continue_ = false;
    bool early_final_ = false;
    chunk_frame frame_{0, false};  ///< the chunk framing being written (write_body_piece)
};

}  // namespace

task<core::auth_decision> forward_request(exchange& ex, upstream_pool& pool, metrics& m) {
    if (pool.settings().protocol != config::upstream_protocol::http1) {
        const auto d = co_await forward_via_h2(ex, pool);
        if (ex.upstream_ms) {
            m.upstream_duration(*ex.upstream_ms / 1000.0);
        }
        co_return d;
    }
    relay r(ex, pool, m);
    co_return co_await r.run();
}

}  // namespace clerk::proxy
