#pragma once
// INTERNAL (Asio-heavy): include from proxy/ sources (through any_stream.hpp) only.
//
// A stream socket with one deadline for its reads, writes and connects, kept the way nginx keeps
// its timers. Setting or moving the deadline stores a time point and touches no timer queue; one
// timer per connection is armed only when the new deadline comes before the one it is armed for,
// and when it fires it checks whether the deadline really passed (if the deadline was moved
// later meanwhile, it re-arms for it). Beast's basic_stream, which this replaces on the data
// path, arms and cancels its timer around every single read and write: on a proxied request that
// was a dozen timer-queue operations, as many mutex round trips and clock reads; here it is one
// clock read per deadline set, and a timer event every header_timeout or so per connection.
//
// Timeout semantics are basic_stream's, so callers compare with beast::error::timeout as before:
// - the deadline passes while an operation is pending: the socket is closed and every pending
//   operation completes with beast::error::timeout;
// - it passed while nothing was pending: the next operation completes with
//   beast::error::timeout (and the socket is closed);
// - a timeout never fires early, and late only by the event loop's own latency.
// The armed timer is outstanding work for its io_context until it fires or the stream is
// destroyed: a context run until it runs out of work (rather than stopped, as the proxy's loops
// are) waits for it.
// Not thread-safe: one event loop (the owning connection's) uses it.

#include "proxy/net/net.hpp"

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include <unistd.h>

namespace clerk::proxy {

namespace detail {

/// The shared part: the socket, the deadline and its timer. Operations in flight hold a strong
/// reference (their completion may run after the stream object is gone, e.g. at shutdown); the
/// timer's handler holds a weak one.
template <class Protocol>
struct deadline_state : std::enable_shared_from_this<deadline_state<Protocol>> {
    using clock = std::chrono::steady_clock;
    using socket_type = boost::asio::basic_stream_socket<Protocol, loop_executor>;
    using timer_type =
        boost::asio::basic_waitable_timer<clock, boost::asio::wait_traits<clock>, loop_executor>;

    explicit deadline_state(socket_type s) : socket(std::move(s)), timer(socket.get_executor()) {}

    socket_type socket;
    timer_type timer;
    clock::time_point deadline = clock::time_point::max();
    clock::time_point armed_at = clock::time_point::max();
    std::uint64_t generation = 0;  // of the current arming; older wake-ups are ignored
    unsigned pending = 0;          // operations in flight
    bool armed = false;
    bool expired = false;    // the deadline passed while nothing was pending
    bool timed_out = false;  // the socket was closed for a timeout

    void set_deadline(clock::time_point t) {
        deadline = t;
        expired = false;
        if (t == clock::time_point::max() || (armed && armed_at <= t)) {
            return;  // no deadline, or the armed timer wakes up first and re-checks
        }
        arm(t);
    }

    void arm(clock::time_point t) {
        armed = true;
        armed_at = t;
        const auto g = ++generation;
        timer.expires_at(t);  // cancels an earlier wait, whose wake-up is then ignored
        timer.async_wait([w = this->weak_from_this(), g](const boost::system::error_code&) {
            const auto s = w.lock();
            if (s && s->generation == g) {
                s->on_timer();
            }
        });
    }

    void on_timer() {
        armed = false;
        if (deadline == clock::time_point::max()) {
            return;
        }
        if (clock::now() < deadline) {
            arm(deadline);  // moved later since arming
            return;
        }
        if (pending > 0) {
            time_out();
        } else {
            expired = true;
        }
    }

    void time_out() {
        timed_out = true;
        expired = false;
        boost::system::error_code ignored;
        socket.close(ignored);
    }

    /// Called as an operation starts: a deadline that passed while nothing was pending closes
    /// the socket now, so the operation fails at once and is reported as a timeout.
    void begin() {
        if (expired) {
            time_out();
        }
    }
};

/// Wraps an operation's completion handler: counts the operation out and reports any error of an
/// operation cut by the deadline as beast::error::timeout. Forwards the handler's associated
/// executor, allocator and cancellation slot (boost::asio::associator below).
template <class Handler, class State>
struct deadline_completion {
    Handler handler;
    std::shared_ptr<State> state;

    template <class... Args>
    void operator()(boost::system::error_code ec, Args&&... args) {
        const auto s = std::move(state);
        --s->pending;
        if (ec && s->timed_out) {
            ec = boost::beast::error::timeout;
        }
        std::move(handler)(ec, std::forward<Args>(args)...);
    }
};

}  // namespace detail

template <class Protocol>
class deadline_stream {
public:
    using clock = std::chrono::steady_clock;
    using protocol_type = Protocol;
    /// On the loop's concrete executor (proxy/net/net.hpp): no type-erased executor is copied per
    /// operation.
    using socket_type = boost::asio::basic_stream_socket<Protocol, loop_executor>;
    using executor_type = loop_executor;
    using lowest_layer_type = socket_type;  // what boost::asio::ssl::stream asks of its next layer

    explicit deadline_stream(socket_type s)
        : st_(std::make_shared<detail::deadline_state<Protocol>>(std::move(s))) {}
    explicit deadline_stream(const executor_type& ex) : deadline_stream(socket_type(ex)) {}
    /// Takes over a socket made on a type-erased executor (an accepted one) without I/O.
    explicit deadline_stream(boost::asio::basic_stream_socket<Protocol> s)
        : deadline_stream(adopt(std::move(s))) {}

    executor_type get_executor() noexcept { return st_->socket.get_executor(); }
    socket_type& socket() noexcept { return st_->socket; }
    socket_type& lowest_layer() noexcept { return st_->socket; }
    const socket_type& lowest_layer() const noexcept { return st_->socket; }

    /// The deadline of every operation pending now or started later, until set again.
    void expires_after(clock::duration d) { st_->set_deadline(clock::now() + d); }
    void expires_at(clock::time_point t) { st_->set_deadline(t); }
    void expires_never() { st_->set_deadline(clock::time_point::max()); }

    /// Closes the socket: pending operations complete with operation_aborted.
    void close() {
        boost::system::error_code ignored;
        st_->socket.close(ignored);
    }

    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [](auto handler, std::shared_ptr<state_type> st, const MutableBufferSequence& b) {
                ++st->pending;
                auto& sock = st->socket;
                auto c = wrap(std::move(handler), std::move(st));
                sock.async_read_some(b, std::move(c));
            },
            token, start(), buffers);
    }

    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [](auto handler, std::shared_ptr<state_type> st, const ConstBufferSequence& b) {
                ++st->pending;
                auto& sock = st->socket;
                auto c = wrap(std::move(handler), std::move(st));
                sock.async_write_some(b, std::move(c));
            },
            token, start(), buffers);
    }

    /// Connects to one endpoint (opening the socket), within the deadline.
    template <class Token>
    auto async_connect(const typename Protocol::endpoint& ep, Token&& token) {
        st_->begin();
        // After a timeout the socket stays closed: connecting would silently reopen it.
        const bool in_time = !st_->timed_out;
        return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
            [](auto handler, std::shared_ptr<state_type> st, bool ok,
               const typename Protocol::endpoint& e) {
                ++st->pending;
                auto& sock = st->socket;
                auto c = wrap(std::move(handler), std::move(st));
                if (!ok) {
                    boost::asio::post(sock.get_executor(), [c = std::move(c)]() mutable {
                        std::move(c)(boost::asio::error::operation_aborted);
                    });
                    return;
                }
                sock.async_connect(e, std::move(c));
            },
            token, st_, in_time, ep);
    }

private:
    static socket_type adopt(boost::asio::basic_stream_socket<Protocol> s) {
        const auto loop = loop_of(s.get_executor());
        boost::system::error_code ec;
        const auto local = s.local_endpoint(ec);
        if (ec || !s.is_open()) {
            return socket_type(loop);  // closed: the first operation fails
        }
        const auto fd = s.release(ec);
        if (ec) {
            return socket_type(loop);  // `s` still owns (and closes) the descriptor
        }
        socket_type out(loop);
        out.assign(local.protocol(), fd, ec);  // registers with the loop's reactor
        if (ec) {
            ::close(fd);  // released and not taken: nobody else would close it
            return socket_type(loop);
        }
        return out;
    }

    using state_type = detail::deadline_state<Protocol>;

    template <class Handler>
    static detail::deadline_completion<Handler, state_type> wrap(Handler h,
                                                                 std::shared_ptr<state_type> st) {
        return {std::move(h), std::move(st)};
    }

    /// For reads and writes.
    std::shared_ptr<state_type> start() {
        st_->begin();
        return st_;
    }

    std::shared_ptr<state_type> st_;
};

}  // namespace clerk::proxy

namespace boost::asio {

/// The wrapper is transparent to Asio: same executor, allocator and cancellation slot as the
/// handler it wraps.
template <template <typename, typename> class Associator, class Handler, class State,
          class DefaultCandidate>
struct associator<Associator, clerk::proxy::detail::deadline_completion<Handler, State>,
                  DefaultCandidate> : Associator<Handler, DefaultCandidate> {
    static typename Associator<Handler, DefaultCandidate>::type get(
        const clerk::proxy::detail::deadline_completion<Handler, State>& h) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler);
    }
    static auto get(const clerk::proxy::detail::deadline_completion<Handler, State>& h,
                    const DefaultCandidate& c) noexcept
        -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
        return Associator<Handler, DefaultCandidate>::get(h.handler, c);
    }
};

}  // namespace boost::asio
