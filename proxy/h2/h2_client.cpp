// The HTTP/2 client toward the upstream (upstream.protocol h2c or h2): connections of the
// event loop's upstream pool, each an nghttp2 client session multiplexing streams up to the
// upstream's SETTINGS_MAX_CONCURRENT_STREAMS. A stream is bridged to its downstream stream_io:
// the request body is read straight from the downstream pipe (its credit returns to the client
// as nghttp2 takes it), the response body goes into the downstream pipe and its credit returns
// to the upstream when the client has taken it; trailers are forwarded both ways.
#include "proxy/h2/h2_stream.hpp"
#include "proxy/logging.hpp"
#include "proxy/net/any_stream.hpp"
#include "proxy/net/tls.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <charconv>
#include <map>

namespace clerk::proxy {

namespace h2 {
class client_connection;
}

struct upstream_pool::h2_connections {
    std::vector<std::shared_ptr<h2::client_connection>> conns;
};

namespace h2 {
namespace {

using boost::system::error_code;
using clock = std::chrono::steady_clock;

const std::shared_ptr<spdlog::logger>& client_log() {
    static const auto log = get_logger("upstream");
    return log;
}

struct client_stream {
    stream_io* io = nullptr;
    std::int32_t id = -1;
    header_list headers;
    int status = 0;
    bool headers_done = false;  // the final response head arrived
    bool end_on_headers = false;
    bool closed = false;
    std::uint32_t error = 0;
    bool deferred = false;  // the request data provider waits for the downstream pipe
    std::uint64_t sent = 0;
    bool too_large = false;
    bool reset_sent = false;
};

}  // namespace

class client_connection : public std::enable_shared_from_this<client_connection> {
public:
    client_connection(std::unique_ptr<any_stream> io, const loop_executor& ex)
        : io_(std::move(io)), wake_(ex) {}
    ~client_connection() {
        if (ng_ != nullptr) {
            nghttp2_session_del(ng_);
        }
        ended_.clear();  // after the session
    }

    bool start(const loop_executor& ex) {
        nghttp2_session_callbacks* cbs = nullptr;
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        nghttp2_option* opt = nullptr;
        nghttp2_option_new(&opt);
        nghttp2_option_set_no_auto_window_update(opt, 1);
        const int rv = nghttp2_session_client_new2(&ng_, cbs, this, opt);
        nghttp2_option_del(opt);
        nghttp2_session_callbacks_del(cbs);
        if (rv != 0) {
            return false;
        }
        nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, nullptr, 0);
        auto self = shared_from_this();
        net::co_spawn(ex, reader(self), [](std::exception_ptr) {});
        net::co_spawn(ex, writer(self), [](std::exception_ptr) {});
        return true;
    }

    bool usable() const {
        // After a GOAWAY from the upstream (or a refused submit) no new stream goes here.
        if (dead_ || closing_ || ng_ == nullptr || nghttp2_session_want_read(ng_) == 0 ||
            nghttp2_session_check_request_allowed(ng_) == 0) {
            return false;
        }
        const auto limit =
            nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        return streams_.size() < limit;
    }
    bool dead() const { return dead_; }

    /// Submits the request of `cs`; false when the connection cannot take it. The connection
    /// keeps `cs` until nghttp2 closes the stream (its callbacks may run after the forwarder
    /// returned: then `cs->io` is null).
    bool submit(const std::shared_ptr<client_stream>& cs) {
        const auto nva = make_nvs(cs->io->request);
        nghttp2_data_provider prd;
        prd.source.ptr = cs.get();
        prd.read_callback = read_request_body;
        const auto id = nghttp2_submit_request(ng_, nullptr, nva.data(), nva.size(),
                                               cs->io->request_has_body ? &prd : nullptr, cs.get());
        if (id < 0) {
            return false;
        }
        cs->id = id;
        streams_[id] = cs;
        wake_.notify();
        return true;
    }

    /// The downstream pipe has more request body: resume the stream's data provider.
    void request_readable(client_stream& cs) {
        if (cs.deferred && !cs.closed && !dead_) {
            cs.deferred = false;
            nghttp2_session_resume_data(ng_, cs.id);
        }
        wake_.notify();
    }
    /// The client took `n` bytes of the response body: credit for the upstream.
    void response_consumed(client_stream& cs, std::size_t n) {
        if (!dead_ && !cs.closed) {
            nghttp2_session_consume_stream(ng_, cs.id, n);
            wake_.notify();
        }
    }
    /// The client went away or the deadline passed: reset the upstream stream.
    void cancel(client_stream& cs) { cancel_detached(cs); }
    void cancel_detached(client_stream& cs) {
        if (!dead_ && !cs.closed && cs.id > 0 && !cs.reset_sent) {
            cs.reset_sent = true;
            nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, cs.id, NGHTTP2_CANCEL);
            wake_.notify();
        }
    }
    /// Its forwarder is returning: callbacks for `cs` do nothing from now on.
    void detach(client_stream& cs) {
        cs.io = nullptr;
        if (!cs.closed) {
            cancel_detached(cs);
        }
    }
    /// No new stream on this connection; the open ones go on, then it is closed.
    void retire() {
        closing_ = true;
        close_if_retired();
    }
    void close_if_retired() {
        if (closing_ && streams_.empty() && !dead_) {
            dead_ = true;
            io_->close();
            wake_.notify();
        }
    }

private:
    task<void> reader(std::shared_ptr<client_connection> /*keep*/) {
        std::array<std::uint8_t, 16 * 1024> buf;
        for (;;) {
            auto [ec, n] = co_await io_->async_read_some(net::buffer(buf), deferred_tuple);
            if (ec || dead_) {
                break;
            }
            const auto rv = nghttp2_session_mem_recv(ng_, buf.data(), n);
            wake_.notify();
            if (rv < 0) {
                client_log()->warn("upstream HTTP/2 connection error: {}",
                                   nghttp2_strerror(static_cast<int>(rv)));
                break;
            }
            if (nghttp2_session_want_read(ng_) == 0 && streams_.empty()) {
                break;
            }
        }
        fail_all();
    }

    task<void> writer(std::shared_ptr<client_connection> /*keep*/) {
        std::string out;
        while (!dead_) {
            out.clear();
            while (out.size() < 64 * 1024) {
                const std::uint8_t* data = nullptr;
                const auto n = nghttp2_session_mem_send(ng_, &data);
                if (n <= 0) {
                    break;
                }
                out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
            }
            if (out.empty()) {
                close_if_retired();
                if (dead_) {
                    break;
                }
                co_await wake_.wait();
                continue;
            }
            auto [ec, n] = co_await net::async_write(*io_, net::buffer(out), deferred_tuple);
            if (ec) {
                break;
            }
        }
        fail_all();
    }

    /// The connection is gone: every stream on it ends (a stream without a response head
    /// yet is answered 502 by its forwarder; one mid-body is reset downstream).
    void fail_all() {
        if (dead_ && streams_.empty()) {
            return;
        }
        dead_ = true;
        io_->close();
        wake_.notify();
        auto streams = std::move(streams_);
        streams_.clear();
        for (auto& [id, cs] : streams) {
            nghttp2_session_set_stream_user_data(ng_, id, nullptr);
            end_stream(*cs, NGHTTP2_INTERNAL_ERROR);
            // nghttp2's data provider may still point at it: kept as long as the session.
            ended_.push_back(std::move(cs));
        }
    }

    static void end_stream(client_stream& cs, std::uint32_t error) {
        if (cs.closed) {
            return;
        }
        cs.closed = true;
        cs.error = error;
        if (cs.io == nullptr) {
            return;
        }
        auto& res = *cs.io->res;
        if (cs.headers_done && !res.eof) {
            if (error == NGHTTP2_NO_ERROR) {
                res.finish();
            } else {
                res.abort();
            }
        }
        cs.io->wake->notify();
    }

    static client_connection& self_of(void* ud) { return *static_cast<client_connection*>(ud); }
    static client_stream* stream_of(nghttp2_session* s, std::int32_t id) {
        return static_cast<client_stream*>(nghttp2_session_get_stream_user_data(s, id));
    }

    static int on_header(nghttp2_session* s, const nghttp2_frame* f, const std::uint8_t* name,
                         std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                         std::uint8_t /*flags*/, void* /*ud*/) {
        auto* cs = stream_of(s, f->hd.stream_id);
        if (cs == nullptr || cs->io == nullptr || f->hd.type != NGHTTP2_HEADERS) {
            return 0;
        }
        std::string_view n(reinterpret_cast<const char*>(name), namelen);
        std::string_view v(reinterpret_cast<const char*>(value), valuelen);
        if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
            if (n == ":status") {
                int st = 0;
                std::from_chars(v.data(), v.data() + v.size(), st);
                cs->status = st;
            } else if (!n.starts_with(':') && !is_connection_specific(n) && n != "x-request-id") {
                cs->headers.emplace_back(std::string(n), std::string(v));
            }
        } else if (cs->headers_done && !n.starts_with(':')) {
            cs->io->res->trailers.emplace_back(std::string(n), std::string(v));
        }
        return 0;
    }

    static int on_frame_recv(nghttp2_session* s, const nghttp2_frame* f, void* /*ud*/) {
        auto* cs = stream_of(s, f->hd.stream_id);
        if (cs == nullptr || cs->io == nullptr) {
            return 0;
        }
        const bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (f->hd.type == NGHTTP2_HEADERS) {
            if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
                if (cs->status >= 200) {
                    cs->headers_done = true;
                    cs->end_on_headers = end;
                } else {
                    cs->headers.clear();  // 1xx: the final head follows
                }
                cs->io->wake->notify();
            } else if (end && cs->headers_done) {
                cs->io->res->finish();  // trailers end the stream
            }
        } else if (f->hd.type == NGHTTP2_DATA && end && cs->headers_done) {
            cs->io->res->finish();
        }
        return 0;
    }

    static int on_data_chunk(nghttp2_session* s, std::uint8_t /*flags*/, std::int32_t id,
                             const std::uint8_t* data, std::size_t len, void* /*ud*/) {
        // As on the server side: the connection window is returned at once (a slow client must
        // not stall the other streams multiplexed on this upstream connection), the stream's
        // window when the client has taken the bytes.
        nghttp2_session_consume_connection(s, len);
        auto* cs = stream_of(s, id);
        if (cs == nullptr || cs->io == nullptr || !cs->headers_done) {
            nghttp2_session_consume_stream(s, id, len);
            return 0;
        }
        cs->io->res->write(data, len);
        return 0;
    }

    static int on_stream_close(nghttp2_session* s, std::int32_t id, std::uint32_t error, void* ud) {
        auto& c = self_of(ud);
        const auto it = c.streams_.find(id);
        if (it == c.streams_.end()) {
            return 0;
        }
        const auto cs = std::move(it->second);
        c.streams_.erase(it);
        nghttp2_session_set_stream_user_data(s, id, nullptr);
        end_stream(*cs, error);
        if (c.closing_ && c.streams_.empty()) {
            // Closed from the writer's turn, not inside nghttp2's callback.
            c.wake_.notify();
        }
        return 0;
    }

    static ssize_t read_request_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf,
                                     std::size_t length, std::uint32_t* flags,
                                     nghttp2_data_source* src, void* /*ud*/) {
        auto& cs = *static_cast<client_stream*>(src->ptr);
        if (cs.io == nullptr) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        auto& req = *cs.io->req;
        if (req.aborted) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        const std::size_t n = req.read(buf, length);
        cs.sent += n;
        if (cs.io->max_body_bytes > 0 && cs.sent > cs.io->max_body_bytes) {
            cs.too_large = true;
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        if (req.eof && req.pending() == 0) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            header_list trailers;
            for (const auto& t : req.trailers) {
                if (cs.io->trailer_allowed && cs.io->trailer_allowed(t.first)) {
                    trailers.push_back(t);
                }
            }
            if (!trailers.empty()) {
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                const auto nva = make_nvs(trailers);
                nghttp2_submit_trailer(s, id, nva.data(), nva.size());
            }
            return static_cast<ssize_t>(n);
        }
        if (n == 0) {
            cs.deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
        return static_cast<ssize_t>(n);
    }

    std::unique_ptr<any_stream> io_;
    nghttp2_session* ng_ = nullptr;
    std::map<std::int32_t, std::shared_ptr<client_stream>> streams_;
    std::vector<std::shared_ptr<client_stream>> ended_;  // fail_all()'s, kept for nghttp2
    wakeup wake_;
    bool dead_ = false;
    bool closing_ = false;
};

namespace {

/// A connection of the pool with room for one more stream, else a new one.
task<std::shared_ptr<client_connection>> acquire(upstream_pool& pool,
                                                 core::auth_decision& failure) {
    if (!pool.h2) {
        pool.h2 = std::make_shared<upstream_pool::h2_connections>();
    }
    auto& conns = pool.h2->conns;
    std::erase_if(conns, [](const auto& c) { return c->dead(); });
    for (auto& c : conns) {
        if (c->usable()) {
            co_return c;
        }
    }
    upstream_pool::connection fresh;
    const error_code ec = co_await pool.acquire(fresh, /*fresh=*/true);
    if (ec) {
        client_log()->warn("upstream connect failed: {}", ec.message());
        failure = {core::decision_kind::upstream_unavailable,
                   ec == beast::error::timeout ? "connect_timeout" : "connect_failed"};
        co_return nullptr;
    }
    if (pool.settings().protocol == config::upstream_protocol::h2) {
        auto* t = fresh.stream->tls();
        if (t == nullptr || alpn_selected(t->native_handle()) != "h2") {
            client_log()->warn("upstream did not select h2 by ALPN");
            fresh.stream->close();
            failure = {core::decision_kind::upstream_unavailable, "h2_not_negotiated"};
            co_return nullptr;
        }
    }
    const auto ex = co_await net::this_coro::executor;
    auto c = std::make_shared<client_connection>(std::move(fresh.stream), ex);
    if (!c->start(ex)) {
        failure = {core::decision_kind::upstream_unavailable, "connect_failed"};
        co_return nullptr;
    }
    conns.push_back(c);
    co_return c;
}

}  // namespace

namespace {

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

}  // namespace h2
}  // namespace clerk::proxy
