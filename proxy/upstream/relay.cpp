// The request side of the relay (relay_detail.hpp): connection and the one-retry rule, request
// head, Expect: 100-continue, request body. The response side is in response_relay.cpp.
#include "proxy/upstream/relay.hpp"

#include "proxy/h2/h1_to_h2.hpp"
#include "proxy/http/message_rules.hpp"
#include "proxy/logging.hpp"
#include "proxy/upstream/relay_detail.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>

#include <charconv>

namespace clerk::proxy {
namespace relay_detail {

const std::shared_ptr<spdlog::logger>& upstream_log() {
    static const auto log = get_logger("upstream");
    return log;
}

task<forward_result> relay::run() {
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
            co_return forward_result::refused(
                {core::decision_kind::upstream_unavailable,
                 ec == beast::error::timeout ? "connect_timeout" : "connect_failed"});
        }
        ex_.up_buffer.clear();
        const outcome o = co_await exchange_once();
        if (o.then == outcome::next::done) {
            co_return forward_result::relayed();
        }
        discard_upstream();
        if (o.then == outcome::next::client_gone) {
            co_return forward_result::client_gone();
        }
        // The one-retry rule: once, and only after a pooled connection failed.
        if (o.then == outcome::next::retry && attempt == 0 && conn_.reused) {
            log_->debug("[r{}] pooled upstream connection was closed; retrying on a new one",
                        ex_.request_id);
            continue;
        }
        co_return forward_result::refused(o.refusal);
    }
}

// --- phase: the upstream request head (target, rewritten headers, framing), serialized once
// into the connection's wire buffer (kept for a retry on a fresh connection)
void relay::build_request_head() {
    const auto& in = ex_.parser.get();
    auto fp = forward_params_for(ex_.rt.rules, cfg_, ex_.id.get(), ex_.peer_ip, ex_.downstream_tls,
                                 ex_.request_id);
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
        const auto r = std::to_chars(digits, digits + sizeof digits, *ex_.framing.content_length);
        head += "Content-Length: ";
        head.append(digits, r.ptr);
        head += "\r\n";
    }
    head += "\r\n";
    const auto expect = in[http::field::expect];
    expect_continue_ = ex_.framing.has_body() && beast::iequals(expect, "100-continue");
}

task<outcome> relay::exchange_once() {
    // The head (and an empty body) upstream.
    auto& up = *conn_.stream;
    up.expires_after(cfg_.upstream.timeout);
    if (auto [ec, n] = co_await net::async_write(up, net::buffer(ex_.wire), deferred_tuple); ec) {
        // Nothing of the client's body was consumed and the upstream cannot have a complete
        // request: sending it again on a fresh connection is safe for any method.
        co_return outcome::upstream_failed(conn_.reused, "upstream_write_failed");
    }
    if (expect_continue_) {
        if (auto o = co_await await_continue(); o.then != outcome::next::go_on) {
            co_return o;
        }
    }
    if (!early_final_ && ex_.framing.has_body()) {
        if (auto o = co_await send_body(); o.then != outcome::next::go_on) {
            co_return o;
        }
    }
    if (!early_final_) {
        if (auto o = co_await read_response_head(); o.then != outcome::next::go_on) {
            co_return o;
        }
    }
    co_return co_await send_response();
}

// --- phase: Expect: 100-continue. The upstream gets a moment to answer 100 (relayed) or a
// final status (relayed; the body is never read). A silent upstream is treated as a 100
// (RFC 9110 §10.1.1 lets a client proceed after a while; the proxy does it on its behalf).
task<outcome> relay::await_continue() {
    using namespace net::experimental::awaitable_operators;
    auto& up = *conn_.stream;
    const auto executor = co_await net::this_coro::executor;
    net::steady_timer timer(
        executor, std::min<clock::duration>(std::chrono::seconds(1), cfg_.upstream.timeout));
    auto r = co_await (up.async_wait_readable(use_task_tuple) || timer.async_wait(use_task_tuple));
    if (r.index() == 0) {
        res_parser_.emplace();
        prepare_response_parser();
        up.expires_after(cfg_.upstream.timeout);
        auto [ec, n] =
            co_await http::async_read_header(up, ex_.up_buffer, *res_parser_, deferred_tuple);
        if (ec) {
            co_return outcome::upstream_failed(conn_.reused, "upstream_closed");
        }
        const int st = res_parser_->get().result_int();
        if (st >= 200) {
            early_final_ = true;
            note_response_head();
            co_return outcome::go_on();
        }
        res_parser_.reset();
    }
    ex_.client.expires_after(cfg_.limits.idle_timeout);
    static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [ec, n] = co_await net::async_write(ex_.client, net::buffer(cont), deferred_tuple);
    if (ec) {
        co_return outcome::client_gone();
    }
    co_return outcome::go_on();
}

// --- phase: stream the request body client -> upstream in bounded chunks
task<outcome> relay::send_body() {
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
            if (is_parse_error(ec)) {
                co_return outcome::refuse(core::decision_kind::bad_request, "invalid_body");
            }
            if (ec == beast::error::timeout) {
                log_->info("[r{}] request body: client too slow ({} bytes), cut", ex_.request_id,
                           total);
            }
            co_return outcome::client_gone();
        }
        const std::size_t got = body_chunk_bytes - p.get().body().size;
        budget.account(clock::now() - t0, got);
        total += got;
        if (limit > 0 && total > limit) {
            co_return outcome::refuse(core::decision_kind::body_too_large);
        }
        if (got == 0) {
            continue;
        }
        up.expires_after(cfg_.upstream.timeout);
        auto [wec, wn] = co_await write_body_piece(up, got, ex_.framing.chunked, {}, false);
        if (wec) {
            co_return outcome::upstream_failed(false, "upstream_write_failed");
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
        co_return outcome::upstream_failed(false, "upstream_write_failed");
    }
    co_return outcome::go_on();
}

}  // namespace relay_detail

task<forward_result> forward_request(exchange& ex, upstream_pool& pool, metrics& m) {
    if (pool.settings().protocol != config::upstream_protocol::http1) {
        const auto d = co_await forward_via_h2(ex, pool);
        if (ex.upstream_ms) {
            m.upstream_duration(*ex.upstream_ms / 1000.0);
        }
        co_return d;
    }
    relay_detail::relay r(ex, pool, m);
    co_return co_await r.run();
}

}  // namespace clerk::proxy
