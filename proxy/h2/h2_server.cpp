// The HTTP/2 server's connection (serve_h2, h2_server.hpp): the frame engine set up on the
// socket, the read loop feeding it, the single writer sending what it produces, the idle
// deadline, drain and close. What each stream does (request checks, authentication, forwarding,
// the response) is in h2_server_stream.cpp; the class both define is in h2_server_detail.hpp.
#include "proxy/h2/h2_server.hpp"

#include "proxy/h2/h2_frames.hpp"
#include "proxy/h2/h2_server_detail.hpp"
#include "proxy/h2/h2_stream.hpp"
#include "proxy/logging.hpp"
#include "proxy/runtime.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

namespace clerk::proxy {

namespace detail {

const std::shared_ptr<spdlog::logger>& h2_log() {
    static const auto log = get_logger("http2");
    return log;
}

}  // namespace detail

namespace {

using detail::h2_log;

}  // namespace

h2_server_connection::h2_server_connection(any_stream& io, beast::flat_buffer& buffer,
                                           const session_env& env, std::string peer_ip, bool tls,
                                           std::uint64_t conn_id, const loop_executor& ex)
    : io_(io),
      in_(buffer),
      env_(env),
      peer_ip_(std::move(peer_ip)),
      tls_(tls),
      conn_id_(conn_id),
      ex_(ex),
      write_wake_(ex),
      done_wake_(ex) {}

task<void> h2_server_connection::run() {
    const auto pin = env_.runtime->current();
    const auto& cfg = *pin->rt->cfg;
    idle_timeout_ = cfg.limits.idle_timeout;
    forward_auth_ = cfg.mode == config::proxy_mode::forward_auth;
    frames_.emplace(
        h2::server_frames::settings{cfg.limits.max_concurrent_streams, cfg.limits.max_header_bytes},
        [this](const std::shared_ptr<h2::server_stream>& s) { start_stream(s); },
        [this] { write_wake_.notify(); });
    if (!frames_->start()) {
        co_return;
    }
    auto self = shared_from_this();
    ++tasks_;
    net::co_spawn(ex_, writer(self), [](std::exception_ptr) {});
    bool ok = feed();
    while (ok && !closing_ && frames_->alive()) {
        if (draining_ && frames_->open_streams() == 0) {
            break;
        }
        update_idle();
        auto [ec, n] = co_await io_.async_read_some(in_.prepare(16 * 1024), deferred_tuple);
        if (ec) {
            break;
        }
        in_.commit(n);
        ok = feed();
    }
    // Let the writer send what is queued (GOAWAY, last frames), then end every stream.
    closing_ = true;
    write_wake_.notify();
    frames_->end_all();
    while (tasks_ > 1) {
        co_await done_wake_.wait();
    }
    // Only the writer is left: it ends once nothing is queued (or the socket broke).
    io_.expires_after(std::chrono::seconds(1));
    write_wake_.notify();
    while (tasks_ > 0) {
        co_await done_wake_.wait();
    }
}

void h2_server_connection::close_if_idle() {
    draining_ = true;
    if (!frames_ || frames_->open_streams() == 0) {
        io_.close();
        return;
    }
    frames_->goaway();
}

void h2_server_connection::close_now() {
    closing_ = true;
    io_.close();
}

bool h2_server_connection::feed() {
    const bool ok =
        frames_->receive(static_cast<const std::uint8_t*>(in_.data().data()), in_.size());
    in_.consume(in_.size());
    if (!ok) {
        h2_log()->debug("[c{}] HTTP/2 connection error: {}", conn_id_, frames_->last_error());
    }
    update_idle();
    return ok;
}

/// No deadline while streams are open (their own limits apply); idle_timeout otherwise.
void h2_server_connection::update_idle() {
    const bool idle = frames_->open_streams() == 0;
    if (idle && !idle_armed_) {
        io_.expires_after(idle_timeout_);
        idle_armed_ = true;
    } else if (!idle && idle_armed_) {
        io_.expires_never();
        idle_armed_ = false;
    }
}

// --- the single writer: what the engine has queued, gathered into one write at a time
task<void> h2_server_connection::writer(std::shared_ptr<h2_server_connection> self) {
    std::string out;
    // A client that stops reading the socket (whatever its windows say) blocks a write: it
    // gets idle_timeout per write, then the connection is closed.
    net::steady_timer write_deadline(ex_);
    for (;;) {
        out.clear();
        frames_->produce(out, 64 * 1024);
        if (!closing_) {
            update_idle();
        }
        if (out.empty()) {
            if (closing_ && tasks_ <= 1) {
                break;
            }
            if (draining_ && frames_->open_streams() == 0) {
                io_.close();  // GOAWAY sent, nothing open: done
            }
            co_await write_wake_.wait();
            continue;
        }
        write_deadline.expires_after(idle_timeout_);
        const auto gen = ++write_gen_;
        write_deadline.async_wait([self, gen](const boost::system::error_code& ec) {
            // A handler already queued when its write completed must not close the
            // connection during a later write: only the write it was armed for counts.
            if (!ec && self->writing_ && self->write_gen_ == gen) {
                h2_log()->info("[c{}] HTTP/2 client not reading: connection closed",
                               self->conn_id_);
                self->closing_ = true;
                self->io_.close();
            }
        });
        writing_ = true;
        auto [ec, n] = co_await net::async_write(io_, net::buffer(out), deferred_tuple);
        writing_ = false;
        write_deadline.cancel();
        if (ec) {
            closing_ = true;
            io_.close();
            break;
        }
    }
    --tasks_;
    done_wake_.notify();
}

task<void> serve_h2(any_stream& io, beast::flat_buffer& buffer, const session_env& env,
                    std::string peer_ip, bool tls, std::uint64_t conn_id,
                    std::shared_ptr<h2_server_connection>& handle) {
    const auto ex = co_await net::this_coro::executor;
    handle = std::make_shared<h2_server_connection>(io, buffer, env, std::move(peer_ip), tls,
                                                    conn_id, ex);
    env.m->http2_connection_opened();
    struct closed {
        metrics& m;
        ~closed() { m.http2_connection_closed(); }
    } guard{*env.m};
    co_await handle->run();
}

void h2_close_if_idle(h2_server_connection& c) {
    c.close_if_idle();
}
void h2_close_now(h2_server_connection& c) {
    c.close_now();
}

}  // namespace clerk::proxy
