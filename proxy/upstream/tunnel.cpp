#include "proxy/upstream/tunnel.hpp"

#include "proxy/http/http_wire.hpp"
#include "proxy/http/message_rules.hpp"
#include "proxy/logging.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <memory>

namespace clerk::proxy {
namespace {

using clock = std::chrono::steady_clock;
using boost::system::error_code;

/// What both directions and the watchdog share. The first to end the tunnel closes both
/// streams (the other direction's pending read then fails) and stops the watchdog.
struct tunnel_state {
    tunnel_state(any_stream& c, any_stream& u, net::any_io_executor ex)
        : client(c), upstream(u), timer(ex) {}
    any_stream& client;
    any_stream& upstream;
    net::steady_timer timer;
    clock::time_point last_activity = clock::now();
    tunnel_result result;
    bool done = false;

    void finish(std::string_view why) {
        if (done) {
            return;
        }
        done = true;
        result.end = why;
        client.close();
        upstream.close();
        timer.cancel();
    }
};

task<void> pump(tunnel_state& s, any_stream& from, any_stream& to, beast::flat_buffer& pending,
                std::uint64_t& moved, char* buf, std::size_t size, std::string_view from_closed) {
    if (pending.size() > 0) {
        auto [ec, n] = co_await net::async_write(to, pending.data(), deferred_tuple);
        moved += n;
        pending.consume(pending.size());
        if (ec) {
            s.finish(from_closed == "client_closed" ? "upstream_closed" : "client_closed");
            co_return;
        }
    }
    for (;;) {
        auto [ec, n] = co_await from.async_read_some(net::buffer(buf, size), deferred_tuple);
        if (ec) {
            s.finish(from_closed);
            co_return;
        }
        s.last_activity = clock::now();
        auto [wec, wn] = co_await net::async_write(to, net::buffer(buf, n), deferred_tuple);
        moved += wn;
        if (wec) {
            s.finish(from_closed == "client_closed" ? "upstream_closed" : "client_closed");
            co_return;
        }
        s.last_activity = clock::now();
    }
}

task<void> watchdog(tunnel_state& s, const tunnel_limits& limits) {
    while (!s.done) {
        const auto now = clock::now();
        if (now >= limits.deadline) {
            s.finish("deadline");
            co_return;
        }
        const auto idle_end = s.last_activity + limits.idle_timeout;
        if (now >= idle_end) {
            s.finish("idle");
            co_return;
        }
        s.timer.expires_at(std::min(idle_end, limits.deadline));
        co_await s.timer.async_wait(deferred_tuple);
    }
}

}  // namespace

task<tunnel_result> run_tunnel(any_stream& client, beast::flat_buffer& client_pending,
                               any_stream& upstream, beast::flat_buffer& upstream_pending,
                               const tunnel_limits& limits) {
    using namespace net::experimental::awaitable_operators;
    // The streams' own per-operation deadlines would cut a quiet direction while the other is
    // busy: the watchdog owns the timing here.
    client.expires_never();
    upstream.expires_never();
    tunnel_state s(client, upstream, co_await net::this_coro::executor);
    constexpr std::size_t half = 16 * 1024;
    const auto buffers = std::make_unique_for_overwrite<char[]>(2 * half);
    co_await (pump(s, client, upstream, client_pending, s.result.to_upstream, buffers.get(), half,
                   "client_closed") &&
              pump(s, upstream, client, upstream_pending, s.result.to_client, buffers.get() + half,
                   half, "upstream_closed") &&
              watchdog(s, limits));
    s.finish("client_closed");  // no-op when a direction already ended it
    co_return s.result;
}

task<bool> serve_upgrade(exchange& ex, const http::response_header<header_fields>& response,
                         any_stream& upstream, metrics& m) {
    const auto& cfg = *ex.rt.cfg;
    auto& head = ex.wire;
    head.clear();
    append_status_line(head, 11, 101, response.reason());
    append_response_headers(response, ex.request_id, head, /*switching=*/true);
    head += "\r\n";
    ex.status = 101;
    ex.client.expires_after(cfg.limits.idle_timeout);
    // The gauge counts the tunnel before the client can see the 101: whoever got the 101 and
    // looks at the metrics finds it there.
    m.tunnel_opened();
    auto [ec, n] = co_await net::async_write(ex.client, net::buffer(head), deferred_tuple);
    if (ec) {
        m.tunnel_closed();
        co_return false;
    }
    m.request_done(101);  // counted at the upgrade; logged when the tunnel closes
    ex.status_counted = true;
    tunnel_limits limits{cfg.limits.tunnel_idle_timeout, clock::time_point::max()};
    const auto now = clock::now();
    if (cfg.limits.tunnel_max_lifetime.count() > 0) {
        limits.deadline = now + cfg.limits.tunnel_max_lifetime;
    }
    if (ex.id && ex.id->expires_at_ms) {
        // Identity was checked once, at the upgrade: the tunnel ends with the token.
        const auto wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
        limits.deadline = std::min(
            limits.deadline, now + std::chrono::milliseconds(*ex.id->expires_at_ms - wall_ms));
    }
    const auto r = co_await run_tunnel(ex.client, ex.client_buffer, upstream, ex.up_buffer, limits);
    m.tunnel_closed();
    static const auto log = get_logger("upstream");
    log->debug("[r{}] tunnel closed ({}): {} bytes up, {} down", ex.request_id, r.end,
               r.to_upstream, r.to_client);
    ex.bytes = r.to_client;
    ex.bytes_in = r.to_upstream;
    co_return true;  // the client connection closes with the tunnel (the keep-alive rule)
}

}  // namespace clerk::proxy
