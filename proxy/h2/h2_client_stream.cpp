// The HTTP/2 client's side of one request (forward_h2, h2_stream.hpp): a pooled connection
// taken (acquire(), h2_client.cpp), the request submitted on it, the response head awaited
// within upstream.timeout and handed to the downstream stream, then the body relayed through the
// pipes until the upstream stream ends, the client goes away or nothing moves for too long; a
// stream the upstream refused before taking any of it is sent once more.
#include "proxy/h2/h2_client_detail.hpp"

#include "proxy/h2/h2_stream.hpp"
#include "proxy/logging.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <utility>

namespace clerk::proxy::h2 {
namespace {

using clock = std::chrono::steady_clock;
using detail::acquire;
using detail::client_log;
using detail::client_stream;

/// One try of forward_h2. `refused` is set when the upstream refused the stream before taking
/// any of it (REFUSED_STREAM, e.g. a GOAWAY racing the request): it may be sent again.
task<core::auth_decision> try_h2(stream_io& io, upstream_pool& pool, clock::time_point started,
                                 bool& refused) {
    core::auth_decision failure{core::decision_kind::upstream_unavailable, "connect_failed"};
    auto csp = std::make_shared<client_stream>();
    auto& cs = *csp;
    cs.io = &io;
    std::shared_ptr<client_connection> conn;
    for (int attempt = 0; attempt < 2 && !conn; ++attempt) {
        conn = co_await acquire(pool, failure);
        if (!conn) {
            co_return failure;
        }
        if (io.client_gone()) {
            co_return core::auth_decision{};
        }
        if (!conn->submit(csp)) {
            conn->retire();  // its open streams go on; new ones take another connection
            conn.reset();
        }
    }
    if (!conn) {
        co_return core::auth_decision{core::decision_kind::upstream_unavailable, "stream_refused"};
    }
    struct detach_guard {
        client_connection& c;
        client_stream& cs;
        stream_io& io;
        ~detach_guard() {
            c.detach(cs);
            io.req->on_readable = [w = io.wake] { w->notify(); };
            io.res->on_consumed = [w = io.wake](std::size_t) { w->notify(); };
        }
    } guard{*conn, cs, io};
    io.req->on_readable = [c = conn.get(), p = &cs] { c->request_readable(*p); };
    io.res->on_consumed = [c = conn.get(), p = &cs](std::size_t n) { c->response_consumed(*p, n); };

    // The response head, within upstream.timeout.
    const auto deadline = started + pool.settings().timeout;
    while (!cs.headers_done && !cs.closed && !io.client_gone()) {
        const auto now = clock::now();
        if (now >= deadline) {
            conn->cancel(cs);
            co_return core::auth_decision{core::decision_kind::upstream_timeout, ""};
        }
        co_await io.wake->wait_for(deadline - now);
    }
    if (io.client_gone()) {
        conn->cancel(cs);
        co_return core::auth_decision{};
    }
    if (!cs.headers_done) {
        if (cs.too_large) {
            co_return core::auth_decision{core::decision_kind::body_too_large, ""};
        }
        if (cs.error == NGHTTP2_REFUSED_STREAM && cs.sent == 0) {
            refused = true;  // a GOAWAY also made the connection unusable (usable())
        }
        co_return core::auth_decision{
            core::decision_kind::upstream_unavailable,
            cs.error == NGHTTP2_REFUSED_STREAM ? "stream_refused" : "upstream_closed"};
    }
    io.upstream_ms = std::chrono::duration<double, std::milli>(clock::now() - started).count();
    io.status = cs.status;
    auto headers = std::move(cs.headers);
    headers.emplace_back("x-request-id", std::string(io.request_id));
    const bool end = cs.end_on_headers;
    if (end) {
        io.res->eof = true;
    }
    io.respond(cs.status, std::move(headers), end);
    // The body streams through the pipes; wait until the upstream stream ends or the client
    // goes away. Without a byte moving either way for upstream.timeout (as a body read on
    // HTTP/1.1), the stream is given up: reset upstream, the client's stream reset.
    // While the client has not taken what is buffered, the wait is the client's
    // (limits.idle_timeout, as on the HTTP/1.1 path), else the upstream's (upstream.timeout).
    auto progress = io.res->total + io.req->total + io.res->off;
    auto last_progress = clock::now();
    while (!cs.closed && !io.client_gone()) {
        const auto now = clock::now();
        const auto moved = io.res->total + io.req->total + io.res->off;
        const bool client_side = io.res->pending() > 0;
        const auto limit = client_side ? io.client_idle_timeout : pool.settings().timeout;
        if (moved != progress) {
            progress = moved;
            last_progress = now;
        } else if (now - last_progress >= limit) {
            client_log()->info(
                "[r{}] HTTP/2 stream: no progress for {}: reset", io.request_id,
                client_side ? "limits.idle_timeout (client not reading)" : "upstream.timeout");
            conn->cancel(cs);
            io.res->abort();
            co_return core::auth_decision{};
        }
        co_await io.wake->wait_for(last_progress + limit - now);
    }
    if (!cs.closed) {
        conn->cancel(cs);
    }
    co_return core::auth_decision{};
}

}  // namespace

task<core::auth_decision> forward_h2(stream_io& io, upstream_pool& pool) {
    const auto started = clock::now();
    bool refused = false;
    auto d = co_await try_h2(io, pool, started, refused);
    if (refused && !io.client_gone()) {
        refused = false;
        d = co_await try_h2(io, pool, started, refused);
    }
    co_return d;
}

}  // namespace clerk::proxy::h2
