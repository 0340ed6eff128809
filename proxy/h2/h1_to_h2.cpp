// An HTTP/1.1 exchange forwarded to an HTTP/2 upstream (upstream.protocol h2c or h2): the
// request is rewritten as on HTTP/1.1 (rewrite_request_headers) into HTTP/2 fields, its body
// moved from the client into the stream's pipe, and the response written back as HTTP/1.1
// (chunked unless the upstream gave a Content-Length). The HTTP/2 side is h2_client's
// forward_h2, run as a sibling coroutine on the same loop; this one waits for it before
// returning, so the pipes and the stream_io in its frame outlive it.
#include "proxy/h2/h1_to_h2.hpp"

#include "proxy/h2/h2_stream.hpp"
#include "proxy/http/http_wire.hpp"
#include "proxy/logging.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>

#include <array>
#include <charconv>

namespace clerk::proxy {
namespace {

using boost::system::error_code;

task<void> run_forward(h2::stream_io& io, upstream_pool& pool, core::auth_decision& result,
                       bool& done, h2::wakeup& wake) {
    result = co_await h2::forward_h2(io, pool);
    done = true;
    wake.notify();
}

}  // namespace

task<forward_result> forward_via_h2(exchange& ex, upstream_pool& pool) {
    const auto& cfg = *ex.rt.cfg;
    if (ex.websocket) {
        co_return forward_result::refused(
            {core::decision_kind::upstream_unavailable, "upgrade_not_supported"});
    }
    const auto& in = ex.parser.get();
    const auto fp = forward_params_for(ex.rt.rules, cfg, ex.id.get(), ex.peer_ip, ex.downstream_tls,
                                       ex.request_id);
    header_fields out;
    rewrite_request_headers(in, out, fp);

    const auto executor = co_await net::this_coro::executor;
    h2::body_pipe req;
    h2::body_pipe res;
    h2::wakeup stream_wake(executor);  // forward_h2's
    h2::wakeup wake(executor);         // this coroutine's
    h2::stream_io io;
    std::string path = cfg.upstream.base_path + ex.target.path;
    if (ex.target.has_query) {
        path += '?';
        path += ex.target.query;
    }
    io.request.emplace_back(":method", ex.method);
    io.request.emplace_back(
        ":scheme", cfg.upstream.scheme == config::upstream_scheme::https ? "https" : "http");
    io.request.emplace_back(":authority", std::string(out[http::field::host]));
    io.request.emplace_back(":path", path);
    for (const auto& f : out) {
        auto name = h2::to_lower(f.name_string());
        if (!h2::is_connection_specific(name)) {
            io.request.emplace_back(std::move(name), std::string(f.value()));
        }
    }
    // te: trailers is the one hop-by-hop field HTTP/2 keeps (gRPC servers require it).
    if (beast::iequals(in[http::field::te], "trailers")) {
        io.request.emplace_back("te", "trailers");
    }
    if (ex.framing.content_length) {
        io.request.emplace_back("content-length", std::to_string(*ex.framing.content_length));
    }
    io.request_has_body = ex.framing.has_body();
    io.max_body_bytes = cfg.limits.max_body_bytes;
    io.req = &req;
    io.res = &res;
    io.wake = &stream_wake;
    io.request_id = ex.request_id;
    bool head_ready = false;
    bool head_end = false;
    int status = 0;
    h2::header_list head;
    bool client_gone = false;
    io.respond = [&](int s, h2::header_list f, bool end) {
        status = s;
        head = std::move(f);
        head_end = end;
        head_ready = true;
        wake.notify();
    };
    io.client_gone = [&client_gone] { return client_gone; };
    req.on_readable = [&stream_wake] { stream_wake.notify(); };
    req.on_consumed = [&wake](std::size_t) { wake.notify(); };
    res.on_readable = [&wake] { wake.notify(); };
    res.on_consumed = [&stream_wake](std::size_t) { stream_wake.notify(); };

    bool done = false;
    core::auth_decision result;
    // A named coroutine, not a capturing lambda: a lambda coroutine's captures live in the
    // lambda object, which does not outlive the first suspension.
    net::co_spawn(executor, run_forward(io, pool, result, done, wake), [&](std::exception_ptr e) {
        if (e) {
            result = {core::decision_kind::upstream_unavailable, "internal_error"};
            done = true;
            wake.notify();
        }
    });
    // Every return below waits for the sibling first: it uses this frame.
    const auto finish = [&]() -> task<void> {
        while (!done) {
            co_await wake.wait();
        }
    };
    const auto abandon = [&]() -> task<void> {
        client_gone = true;
        req.abort();
        stream_wake.notify();
        while (!done) {
            co_await wake.wait();
        }
    };

    // --- the request body, client -> pipe (the upstream takes it as its window allows)
    if (io.request_has_body) {
        auto& p = ex.parser;
        std::uint64_t total = 0;
        char* const chunk = ex.chunk.get();
        while (!p.is_done()) {
            while (req.pending() >= h2::pipe_high_water && !done) {
                co_await wake.wait();
            }
            if (done) {
                break;  // the upstream answered (or failed) before taking the whole body
            }
            p.get().body().data = chunk;
            p.get().body().size = body_chunk_bytes;
            ex.client.expires_after(cfg.limits.idle_timeout);
            auto [ec, n] =
                co_await http::async_read_some(ex.client, ex.client_buffer, p, deferred_tuple);
            if (ec == http::error::need_buffer) {
                ec = {};
            }
            if (ec) {
                co_await abandon();
                co_return forward_result::client_gone();
            }
            const std::size_t got = body_chunk_bytes - p.get().body().size;
            total += got;
            if (cfg.limits.max_body_bytes > 0 && total > cfg.limits.max_body_bytes) {
                co_await abandon();
                client_gone = false;
                co_return forward_result::refused({core::decision_kind::body_too_large, ""});
            }
            if (got > 0) {
                req.write(reinterpret_cast<const std::uint8_t*>(chunk), got);
            }
        }
        if (p.is_done()) {
            ex.body_consumed = true;
            req.finish();
        }
    }

    // --- the response head
    while (!head_ready && !done) {
        co_await wake.wait();
    }
    if (!head_ready) {
        // Nothing started: the session renders the refusal.
        co_return result.allowed() ? forward_result::client_gone()
                                   : forward_result::refused(result);
    }
    ex.status = status;
    ex.upstream_ms = io.upstream_ms;
    const unsigned version = in.version() == 10 ? 10 : 11;
    const bool no_body = ex.method == "HEAD" || status == 204 || status == 304 || head_end;
    std::string& wire = ex.wire;
    wire.clear();
    append_status_line(wire, version, static_cast<unsigned>(status), {});
    bool has_length = false;
    for (const auto& [n, v] : head) {
        if (n == "content-length") {
            has_length = true;
        }
        wire += n;
        wire += ": ";
        wire += v;
        wire += "\r\n";
    }
    const bool chunked = !no_body && !has_length && version == 11;
    if (head_end && status != 204 && status != 304 && !has_length) {
        wire += "content-length: 0\r\n";
    } else if (chunked) {
        wire += "transfer-encoding: chunked\r\n";
    } else if (!no_body && !has_length) {
        ex.close_delimited = true;  // an HTTP/1.0 client: the body ends with the connection
    }
    if (!ex.decide_keep_alive()) {
        wire += "connection: close\r\n";
    }
    wire += "\r\n";
    ex.client.expires_after(cfg.limits.idle_timeout);
    auto [hec, hn] = co_await net::async_write(ex.client, net::buffer(wire), deferred_tuple);
    if (hec) {
        co_await abandon();
        co_return forward_result::client_gone();
    }
    // --- the response body, pipe -> client
    if (!no_body) {
        for (;;) {
            while (res.pending() == 0 && !res.eof && !res.aborted && !done) {
                co_await wake.wait();
            }
            if (res.aborted || (res.pending() == 0 && !res.eof)) {
                co_await abandon();  // cut: the upstream broke mid-body
                co_return forward_result::client_gone();
            }
            const auto data = res.peek();
            const bool last = res.eof;
            const auto frame = chunked ? chunk_frame(data.size(), last) : chunk_frame(0, false);
            const std::array<net::const_buffer, 3> pieces{
                net::buffer(frame.head()), net::buffer(data), net::buffer(frame.tail())};
            ex.client.expires_after(cfg.limits.idle_timeout);
            auto [wec, wn] = co_await net::async_write(ex.client, pieces, deferred_tuple);
            if (wec) {
                co_await abandon();
                co_return forward_result::client_gone();
            }
            ex.bytes += data.size();
            res.consume(data.size());
            if (last) {
                break;
            }
        }
    }
    co_await finish();
    co_return forward_result::relayed();
}

}  // namespace clerk::proxy
