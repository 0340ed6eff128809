#include "proxy/h2/h2_upstream_h1.hpp"

#include "proxy/http/http_wire.hpp"
#include "proxy/logging.hpp"
#include "proxy/net/any_stream.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>

#include <array>
#include <charconv>

namespace clerk::proxy::h2 {
namespace {

using boost::system::error_code;
using clock = std::chrono::steady_clock;
namespace http = boost::beast::http;

bool is_idempotent(std::string_view m) {
    return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" ||
           m == "TRACE";
}

struct upstream_guard {
    upstream_pool& pool;
    upstream_pool::connection conn;
    std::function<void()>& cancel;
    ~upstream_guard() { drop(); }
    void drop() {
        cancel = nullptr;
        if (conn.stream) {
            conn.stream->close();
            conn.stream.reset();
        }
    }
    void release() {
        cancel = nullptr;
        if (conn.stream) {
            pool.release(std::move(conn.stream));
        }
    }
};

}  // namespace

task<core::auth_decision> forward_h1(stream_io& io, upstream_pool& pool, std::string_view method,
                                     std::string_view target, const header_fields& fields,
                                     const forward_params& fp, std::function<void()>& cancel) {
    const auto& ucfg = pool.settings();
    const auto log = get_logger("upstream");
    // The head, once (kept for a retry on a fresh connection).
    std::string head;
    std::string scratch;
    append_request_line(head, method, target);
    append_request_headers(fields, fp, head, scratch);
    const auto cl_text = fields[http::field::content_length];
    const bool has_length = !cl_text.empty();
    const bool chunked = io.request_has_body && !has_length;
    if (has_length) {
        head += "Content-Length: ";
        head += cl_text;
        head += "\r\n";
    } else if (chunked) {
        head += "Transfer-Encoding: chunked\r\n";
    }
    head += "\r\n";
    const bool can_retry = !io.request_has_body && is_idempotent(method);
    const auto started = clock::now();

    upstream_guard g{pool, {}, cancel};
    beast::flat_buffer up_buffer;
    std::optional<response_parser<http::buffer_body>> rp;
    for (int attempt = 0;; ++attempt) {
        const error_code aec = co_await pool.acquire(g.conn, attempt > 0, can_retry);
        if (aec) {
            log->warn("[r{}] upstream connect failed: {}", io.request_id, aec.message());
            co_return core::auth_decision{
                core::decision_kind::upstream_unavailable,
                aec == beast::error::timeout ? "connect_timeout" : "connect_failed"};
        }
        if (io.client_gone()) {
            co_return core::auth_decision{};  // reset while the connection was being made
        }
        auto* up = g.conn.stream.get();
        cancel = [up] { up->close(); };
        up->expires_after(ucfg.timeout);
        auto [wec, wn] = co_await net::async_write(*up, net::buffer(head), deferred_tuple);
        if (wec) {
            const bool reused = g.conn.reused;
            g.drop();
            if (reused && attempt == 0 && !io.client_gone()) {
                continue;
            }
            co_return core::auth_decision{core::decision_kind::upstream_unavailable,
                                          "upstream_write_failed"};
        }
        // --- the request body, from the stream's pipe (its credit returns as it is written)
        if (io.request_has_body) {
            auto& req = *io.req;
            std::uint64_t sent = 0;
            for (;;) {
                // A client that stops sending its body is given idle_timeout per piece.
                const auto stalled = clock::now() + io.client_idle_timeout;
                while (req.pending() == 0 && !req.eof && !req.aborted && clock::now() < stalled) {
                    co_await io.wake->wait_for(stalled - clock::now());
                }
                if (req.aborted) {
                    co_return core::auth_decision{};  // the client went away
                }
                if (req.pending() == 0 && !req.eof) {
                    log->info("[r{}] request body: client too slow, stream refused", io.request_id);
                    co_return core::auth_decision{core::decision_kind::bad_request,
                                                  "client_too_slow"};
                }
                const auto data = req.peek();
                sent += data.size();
                if (io.max_body_bytes > 0 && sent > io.max_body_bytes) {
                    co_return core::auth_decision{core::decision_kind::body_too_large, ""};
                }
                const auto frame =
                    chunked ? chunk_frame(data.size(), req.eof) : chunk_frame(0, false);
                const std::array<net::const_buffer, 3> pieces{
                    net::buffer(frame.head()), net::buffer(data), net::buffer(frame.tail())};
                up->expires_after(ucfg.timeout);
                auto [bec, bn] = co_await net::async_write(*up, pieces, deferred_tuple);
                if (bec) {
                    co_return core::auth_decision{core::decision_kind::upstream_unavailable,
                                                  "upstream_write_failed"};
                }
                const bool last = req.eof;
                req.consume(data.size());
                if (last && req.pending() == 0) {
                    break;
                }
            }
        }
        // --- the response head (1xx skipped)
        for (;;) {
            rp.emplace();
            rp->body_limit(boost::none);
            up->expires_after(ucfg.timeout);
            auto [rec, rn] = co_await http::async_read_header(*up, up_buffer, *rp, deferred_tuple);
            if (rec) {
                if (io.client_gone()) {
                    co_return core::auth_decision{};
                }
                const bool timeout = rec == beast::error::timeout;
                const bool retry =
                    g.conn.reused && attempt == 0 && can_retry && !timeout && up_buffer.size() == 0;
                g.drop();
                if (retry) {
                    rp.reset();
                    break;
                }
                co_return timeout ? core::auth_decision{core::decision_kind::upstream_timeout, ""}
                                  : core::auth_decision{core::decision_kind::upstream_unavailable,
                                                        "upstream_closed"};
            }
            if (rp->get().result_int() >= 200) {
                break;
            }
        }
        if (rp) {
            break;
        }
    }
    auto* up = g.conn.stream.get();
    io.upstream_ms = std::chrono::duration<double, std::milli>(clock::now() - started).count();
    const auto& res = rp->get();
    io.status = res.result_int();
    header_fields out;
    rewrite_response_headers(res, out, io.request_id);
    header_list h;
    for (const auto& f : out) {
        auto name = to_lower(f.name_string());
        if (!is_connection_specific(name)) {
            h.emplace_back(std::move(name), std::string(f.value()));
        }
    }
    const bool no_body = method == "HEAD" || io.status == 204 || io.status == 304;
    if (const auto cl = res.find(http::field::content_length);
        cl != res.end() && io.status != 204) {
        h.emplace_back("content-length", std::string(cl->value()));
    }
    if (no_body || rp->is_done()) {
        io.respond(io.status, std::move(h), true);
        if (rp->keep_alive() && (io.req->eof || !io.request_has_body)) {
            g.release();
        }
        co_return core::auth_decision{};
    }
    io.respond(io.status, std::move(h), false);
    auto& res_pipe = *io.res;
    std::array<char, 16 * 1024> chunk;
    while (!rp->is_done()) {
        // A client that stops reading (its window stays shut) is given idle_timeout per step.
        const auto stalled = clock::now() + io.client_idle_timeout;
        while (res_pipe.pending() >= pipe_high_water && !io.client_gone() &&
               clock::now() < stalled) {
            co_await io.wake->wait_for(stalled - clock::now());
        }
        if (io.client_gone() || res_pipe.pending() >= pipe_high_water) {
            if (!io.client_gone()) {
                log->info("[r{}] response body: client too slow, stream reset", io.request_id);
                res_pipe.abort();
            }
            co_return core::auth_decision{};
        }
        rp->get().body().data = chunk.data();
        rp->get().body().size = chunk.size();
        up->expires_after(ucfg.timeout);
        auto [rec, rn] = co_await http::async_read_some(*up, up_buffer, *rp, deferred_tuple);
        if (rec && rec != http::error::need_buffer) {
            log->warn("[r{}] upstream response body incomplete: {}", io.request_id, rec.message());
            res_pipe.abort();
            co_return core::auth_decision{};
        }
        const std::size_t got = chunk.size() - rp->get().body().size;
        if (got > 0) {
            res_pipe.write(reinterpret_cast<const std::uint8_t*>(chunk.data()), got);
        }
    }
    if (rp->keep_alive()) {
        g.release();
    }
    res_pipe.finish();
    co_return core::auth_decision{};
}

}  // namespace clerk::proxy::h2
