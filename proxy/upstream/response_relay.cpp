// The response side of the relay (relay_detail.hpp): response head, response body streamed to
// the client, the WebSocket switch, and the upstream connection back to the pool. The request
// side is in relay.cpp.
#include "proxy/http/message_rules.hpp"
#include "proxy/logging.hpp"
#include "proxy/upstream/relay_detail.hpp"
#include "proxy/upstream/tunnel.hpp"

#include <boost/beast/http/read.hpp>

#include <charconv>

namespace clerk::proxy::relay_detail {
namespace {

double ms_since(clock::time_point t) {
    return std::chrono::duration<double, std::milli>(clock::now() - t).count();
}

}  // namespace

void relay::prepare_response_parser() {
    res_parser_->header_limit(64 * 1024);
    res_parser_->body_limit(boost::none);
    if (ex_.method == "HEAD") {
        res_parser_->skip(true);
    }
}

void relay::note_response_head() {
    ex_.upstream_ms = ms_since(started_);
    m_.upstream_duration(*ex_.upstream_ms / 1000.0);
}

// --- phase: wait for the response head (upstream.timeout), skipping interim responses
task<outcome> relay::read_response_head() {
    auto& up = *conn_.stream;
    for (;;) {
        res_parser_.emplace();
        prepare_response_parser();
        up.expires_after(cfg_.upstream.timeout);
        auto [ec, n] =
            co_await http::async_read_header(up, ex_.up_buffer, *res_parser_, deferred_tuple);
        if (ec == beast::error::timeout) {
            co_return outcome::refuse(core::decision_kind::upstream_timeout);
        }
        if (ec) {
            // A reused connection that the upstream closed before answering: the request may
            // or may not have been processed, so only idempotent requests without a body
            // (nothing consumed from the client) are sent again.
            const bool invalid = is_parse_error(ec);
            const bool retry = conn_.reused && !invalid && ex_.up_buffer.size() == 0 && can_retry();
            co_return outcome::upstream_failed(retry,
                                               invalid ? "invalid_response" : "upstream_closed");
        }
        const int st = res_parser_->get().result_int();
        if (st == 101) {
            if (ex_.websocket) {
                break;  // switching protocols: the tunnel (send_response)
            }
            // A 101 nobody asked for: the connection's protocol is unknown from here on.
            co_return outcome::upstream_failed(false, "upgrade_not_supported");
        }
        if (st >= 200) {
            break;
        }
    }
    note_response_head();
    co_return outcome::go_on();
}

// --- phase (WebSocket): the upstream switched protocols; relay its 101, then bytes both
// ways until either side closes (docs/reference.md §13). Identity was checked at the upgrade;
// the tunnel ends at the token's known expiration at the latest.
task<outcome> relay::switch_protocols() {
    const bool ok = co_await serve_upgrade(ex_, res_parser_->get(), *conn_.stream, m_);
    discard_upstream();  // never pooled: it carried the tunnel
    co_return ok ? outcome::done() : outcome::client_gone();
}

// --- phase: relay the response upstream -> client
task<outcome> relay::send_response() {
    auto& rp = *res_parser_;
    const auto& up_res = rp.get();
    const int st = up_res.result_int();
    if (st == 101) {
        co_return co_await switch_protocols();
    }
    const unsigned client_version = ex_.parser.get().version() == 10 ? 10 : 11;

    // The head is serialized straight from the upstream's fields (no intermediate header
    // container): status line, rewritten fields, then framing and Connection.
    auto& head = ex_.wire;
    head.clear();
    append_status_line(head, client_version, static_cast<unsigned>(st), up_res.reason());
    append_response_headers(up_res, ex_.request_id, head);

    ex_.status = st;
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
        ex_.close_delimited = true;  // an HTTP/1.0 client: the body ends with the connection
    }
    // The upstream's Connection header was dropped with the hop-by-hop ones.
    const bool keep = ex_.decide_keep_alive();
    if (client_version >= 11 && !keep) {
        head += "Connection: close\r\n";
    } else if (client_version == 10 && keep) {
        head += "Connection: keep-alive\r\n";
    }
    head += "\r\n";

    // Whatever of the body arrived with the head is parsed now, without I/O, so that a
    // small response leaves in one write (head and body gathered), not three.
    std::size_t first = 0;
    if (!no_body) {
        if (auto err = parse_buffered_body(rp, first)) {
            // Nothing was written to the client yet: it gets a 502 (run() discards the
            // connection).
            log_->warn("[r{}] upstream response body invalid: {}", ex_.request_id, err.message());
            co_return outcome::upstream_failed(false, "invalid_response");
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
        co_return outcome::client_gone();
    }
    if (no_body || rp.is_done()) {
        co_return outcome::done();
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
            co_return outcome::client_gone();
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
            if (wec == beast::error::timeout) {
                log_->info("[r{}] response body: client too slow ({} bytes), cut", ex_.request_id,
                           ex_.bytes);
            }
            co_return outcome::client_gone();
        }
        ex_.bytes += got;
    }
    co_return outcome::done();
}

/// Parses the response body bytes already in ex_.up_buffer (read with the head) into the body
/// chunk, without I/O; `got` is how many body bytes it holds. Stops when the chunk is full,
/// the buffer is used up or the body is complete.
error_code relay::parse_buffered_body(response_parser<http::buffer_body>& rp, std::size_t& got) {
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

/// Pools the upstream connection when its exchange is complete and it may be reused:
/// response read to the end, upstream keep-alive, and our request sent completely.
void relay::release_if_done() {
    const auto& rp = *res_parser_;
    finish_upstream(rp.is_done() && rp.keep_alive() && !early_final_ &&
                    (!ex_.framing.has_body() || ex_.body_consumed));
}

void relay::finish_upstream(bool reusable) {
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

}  // namespace clerk::proxy::relay_detail
