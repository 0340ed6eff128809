#pragma once
// INTERNAL: include from proxy/h2/*.cpp only.
//
// The seam between a downstream stream (an HTTP/2 stream of h2_server, or an HTTP/1.1 exchange)
// and a forwarder that speaks HTTP/2 to the upstream (h2_client): the request as header pairs,
// the two body pipes, and the calls that answer the client.
#include "core/auth_decision.hpp"
#include "proxy/h2/h2_common.hpp"
#include "proxy/net/net.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace clerk::proxy {
class upstream_pool;
}

namespace clerk::proxy::h2 {

/// A coroutine waits on it until another party on the same loop calls notify(). Waiting after
/// checking a condition is race-free: the loop is single-threaded, so no notify can slip in
/// between the check and the wait.
class wakeup {
public:
    explicit wakeup(const net::any_io_executor& ex) : timer_(ex) {
        timer_.expires_at(std::chrono::steady_clock::time_point::max());
    }
    task<void> wait() {
        timer_.expires_at(std::chrono::steady_clock::time_point::max());
        co_await timer_.async_wait(deferred_tuple);
    }
    /// Waits at most `d` (a deadline for the condition the caller re-checks).
    task<void> wait_for(std::chrono::steady_clock::duration d) {
        timer_.expires_after(d);
        co_await timer_.async_wait(deferred_tuple);
    }
    void notify() { timer_.cancel(); }

private:
    net::steady_timer timer_;
};

struct stream_io {
    /// The upstream request: pseudo-headers first (:method, :scheme, :authority, :path), then
    /// the rewritten fields, lower-case names.
    header_list request;
    bool request_has_body = false;
    std::uint64_t max_body_bytes = 0;  ///< limits.max_body_bytes (0 = unlimited)
    /// Whether a request trailer may go upstream (identity headers, Authorization unless
    /// forwarded, and hop-by-hop fields never do): set by the downstream side.
    std::function<bool(std::string_view name)> trailer_allowed;
    /// limits.idle_timeout: how long a response may wait for a client that does not read.
    std::chrono::steady_clock::duration client_idle_timeout = std::chrono::seconds(60);
    body_pipe* req = nullptr;  ///< client -> upstream body (its consumer is the forwarder)
    body_pipe* res = nullptr;  ///< upstream -> client body (its producer is the forwarder)
    /// Starts the client's response (`status`, fields with lower-case names); `end` when it has
    /// no body (then `fields` may carry grpc-status: a trailers-only answer).
    std::function<void(int status, header_list fields, bool end)> respond;
    /// True once the client side is gone (stream reset, connection closed).
    std::function<bool()> client_gone;
    std::string_view request_id;
    /// The stream's wake-up: notified when the request pipe has data, eof or abort, when the
    /// response pipe has room, and when the client goes away.
    wakeup* wake = nullptr;
    int status = 0;  ///< the upstream's status, once it answered
    std::optional<double> upstream_ms;
};

/// Forwards `io` over a pooled, multiplexed HTTP/2 connection of `pool` (upstream.protocol h2c
/// or h2). Returns allow when the upstream answered (the response then streams through io.res
/// until it ends; this call returns when it has), or the refusal to render when no response
/// started: upstream_unavailable (connect failed, no h2 by ALPN, stream refused or reset),
/// upstream_timeout. Never throws for network outcomes.
task<core::auth_decision> forward_h2(stream_io& io, upstream_pool& pool);

}  // namespace clerk::proxy::h2
