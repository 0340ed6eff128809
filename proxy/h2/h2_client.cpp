// The HTTP/2 client toward the upstream (upstream.protocol h2c or h2): connections of the
// event loop's upstream pool, each an nghttp2 client session multiplexing streams up to the
// upstream's SETTINGS_MAX_CONCURRENT_STREAMS. This file: a connection's set-up, its read and
// write loops, the calls its streams make on it (submit, credit, cancel, retire), and acquire()
// (a pooled connection with room, else a new one). The session's callbacks are in
// h2_client_callbacks.cpp, one request's submission and relay (forward_h2) in
// h2_client_stream.cpp; the class they share in h2_client_detail.hpp.
#include "proxy/h2/h2_client_detail.hpp"

#include "proxy/h2/h2_stream.hpp"
#include "proxy/logging.hpp"
#include "proxy/net/any_stream.hpp"
#include "proxy/net/tls.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace clerk::proxy {

struct upstream_pool::h2_connections {
    std::vector<std::shared_ptr<h2::client_connection>> conns;
};

void upstream_pool::retire_h2() {
    if (h2) {
        for (auto& c : h2->conns) {
            c->retire();
        }
    }
}

std::size_t upstream_pool::h2_open() const {
    if (!h2) {
        return 0;
    }
    return static_cast<std::size_t>(std::count_if(h2->conns.begin(), h2->conns.end(),
                                                  [](const auto& c) { return !c->dead(); }));
}

namespace h2 {
namespace {

using boost::system::error_code;
using detail::client_log;
using detail::client_stream;

/// An idle connection older than this is retired, as an idle HTTP/1.1 one is not reused
/// (upstream_pool.cpp): upstreams close idle connections after a while, and one closed while
/// a request picks it costs a retry. No PING keeps connections alive or probes them: gRPC
/// servers count a PING without data as a strike (grpc.http2.min_ping_interval_without_data_ms,
/// 5 minutes by default) and answer repeated ones with GOAWAY ENHANCE_YOUR_CALM, which would
/// end a long, quiet streaming call; a stream on a connection that died silently is bounded by
/// upstream.timeout instead.
constexpr auto max_idle_age = std::chrono::seconds(30);

}  // namespace

namespace detail {

const std::shared_ptr<spdlog::logger>& client_log() {
    static const auto log = get_logger("upstream");
    return log;
}

}  // namespace detail

client_connection::client_connection(std::unique_ptr<any_stream> io, const loop_executor& ex)
    : io_(std::move(io)), wake_(ex) {}

client_connection::~client_connection() {
    if (ng_ != nullptr) {
        nghttp2_session_del(ng_);
    }
    ended_.clear();  // after the session
}

bool client_connection::start(const loop_executor& ex) {
    session_callbacks cb;
    cb.on_header = on_header;
    cb.on_frame_recv = on_frame_recv;
    cb.on_data_chunk = on_data_chunk;
    cb.on_stream_close = on_stream_close;
    ng_ = new_session(session_role::client, cb, this);
    if (ng_ == nullptr) {
        return false;
    }
    nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, nullptr, 0);
    auto self = shared_from_this();
    net::co_spawn(ex, reader(self), [](std::exception_ptr) {});
    net::co_spawn(ex, writer(self), [](std::exception_ptr) {});
    return true;
}

bool client_connection::usable() const {
    // After a GOAWAY from the upstream (or a refused submit) no new stream goes here.
    if (dead_ || closing_ || ng_ == nullptr || nghttp2_session_want_read(ng_) == 0 ||
        nghttp2_session_check_request_allowed(ng_) == 0) {
        return false;
    }
    const auto limit =
        nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return streams_.size() < limit;
}

bool client_connection::submit(const std::shared_ptr<client_stream>& cs) {
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

void client_connection::request_readable(client_stream& cs) {
    if (cs.deferred && !cs.closed && !dead_) {
        cs.deferred = false;
        nghttp2_session_resume_data(ng_, cs.id);
    }
    wake_.notify();
}

void client_connection::response_consumed(client_stream& cs, std::size_t n) {
    if (!dead_ && !cs.closed) {
        nghttp2_session_consume_stream(ng_, cs.id, n);
        wake_.notify();
    }
}

void client_connection::cancel_detached(client_stream& cs) {
    if (!dead_ && !cs.closed && cs.id > 0 && !cs.reset_sent) {
        cs.reset_sent = true;
        nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, cs.id, NGHTTP2_CANCEL);
        wake_.notify();
    }
}

void client_connection::detach(client_stream& cs) {
    cs.io = nullptr;
    if (!cs.closed) {
        cancel_detached(cs);
    }
}

void client_connection::retire() {
    closing_ = true;
    close_if_retired();
}

bool client_connection::close_if_retired() {
    if (!closing_ || !streams_.empty() || dead_) {
        return false;
    }
    if (!goaway_sent_) {
        // GOAWAY first: the writer sends it, then calls here again to close.
        goaway_sent_ = true;
        nghttp2_session_terminate_session(ng_, NGHTTP2_NO_ERROR);
        wake_.notify();
        return true;
    }
    dead_ = true;
    io_->close();
    wake_.notify();
    return false;
}

task<void> client_connection::reader(std::shared_ptr<client_connection> /*keep*/) {
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

task<void> client_connection::writer(std::shared_ptr<client_connection> /*keep*/) {
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
            if (close_if_retired()) {
                continue;  // the GOAWAY just queued
            }
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
void client_connection::fail_all() {
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

namespace detail {

/// A connection of the pool with room for one more stream, else a new one.
task<std::shared_ptr<client_connection>> acquire(upstream_pool& pool,
                                                 core::auth_decision& failure) {
    if (!pool.h2) {
        pool.h2 = std::make_shared<upstream_pool::h2_connections>();
    }
    auto& conns = pool.h2->conns;
    std::erase_if(conns, [](const auto& c) { return c->dead(); });
    const auto now = client_connection::clock::now();
    std::shared_ptr<client_connection> chosen;
    for (auto& c : conns) {
        if (c->usable() && !(c->idle() && now - c->idle_since() >= max_idle_age)) {
            chosen = c;
            break;
        }
    }
    // Idle connections beyond upstream.max_idle_connections (newest kept) and the ones idle
    // longer than max_idle_age are retired: GOAWAY, then closed.
    std::size_t kept = 0;
    for (auto it = conns.rbegin(); it != conns.rend(); ++it) {
        auto& c = **it;
        if (&c == chosen.get() || !c.idle()) {
            continue;
        }
        if (now - c.idle_since() >= max_idle_age || kept >= pool.settings().max_idle_connections) {
            c.retire();
        } else {
            ++kept;
        }
    }
    if (chosen) {
        co_return chosen;
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

}  // namespace detail

}  // namespace h2
}  // namespace clerk::proxy
