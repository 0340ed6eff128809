// One HTTP/1.1 connection's life (session_detail.hpp): TLS handshake, HTTP/2 detection, the
// request loop, reading a head, authorizing, closing. What the proxy answers itself and the
// per-request record are in session_answers.cpp.
#include "proxy/http/session.hpp"

#include "proxy/http/session_detail.hpp"

#include "core/grpc_status.hpp"
#include "core/problem.hpp"
#include "core/request_decision.hpp"
#include "proxy/access_log.hpp"
#include "proxy/auth/request_auth.hpp"
#include "proxy/h2/h2_server.hpp"
#include "proxy/http/connection_registry.hpp"
#include "proxy/http/exchange.hpp"
#include "proxy/http/forward_auth.hpp"
#include "proxy/http/message_rules.hpp"
#include "proxy/logging.hpp"
#include "proxy/net/tls.hpp"
#include "proxy/runtime.hpp"
#include "proxy/upstream/relay.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <vector>

namespace clerk::proxy {
namespace session_detail {

any_stream make_stream(tcp::socket socket, const session_env& env) {
    if (env.tls) {
        return any_stream(std::in_place_type<any_stream::tls_stream>, std::move(socket), *env.tls);
    }
    return any_stream(std::in_place_type<any_stream::tcp_stream>, std::move(socket));
}

std::string peer_ip_of(const tcp::socket& socket) {
    error_code ec;
    const auto ep = socket.remote_endpoint(ec);
    if (ec) {
        return {};
    }
    // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; upstreams expect a.b.c.d.
    const auto addr = ep.address();
    return addr.is_v6() && addr.to_v6().is_v4_mapped()
               ? net::ip::make_address_v4(net::ip::v4_mapped, addr.to_v6()).to_string()
               : addr.to_string();
}

task<void> session::run() {
    accepted_ = clock::now();
    // The executor is fetched into a local first: GCC 12 mishandles temporaries of a braced
    // initializer that contains a co_await (they can be destroyed twice).
    const auto loop = co_await net::this_coro::executor;
    connection_registry::entry e;
    e.strand = loop;
    e.close_if_idle = [this] { close_if_idle(); };
    e.close_now = [this] {
        if (h2_) {
            h2_close_now(*h2_);
        }
        stream_.close();
    };
    id_ = env_.registry->add(std::move(e));
    env_.m->connection_opened();
    struct unregister {
        session& s;
        ~unregister() {
            s.env_.registry->remove(s.id_);
            s.env_.m->connection_closed();
        }
    } guard{*this};

    if (!co_await handshake()) {
        co_return;
    }
    if (co_await speaks_h2()) {
        co_await serve_h2(stream_, buffer_, env_, peer_ip_, env_.tls != nullptr, id_, h2_);
        h2_.reset();
        stream_.close();
        co_return;
    }
    for (bool first = true;; first = false) {
        if (!co_await wait_for_request(first)) {
            break;
        }
        // The snapshot this request runs under, whatever a reload does meanwhile.
        const auto pin = env_.runtime->current();
        request_parser<http::buffer_body> parser;
        exchange ex{stream_,        buffer_, parser,   *pin->rt,
                    *env_.registry, bufs_,   peer_ip_, env_.tls != nullptr};
        ex.start = clock::now();
        const auto wall_start = std::chrono::system_clock::now();
        const bool keep = co_await serve(ex);
        log_exchange(ex, wall_start);
        if (!keep) {
            break;
        }
    }
    co_await close();
}

// --- phase: TLS handshake (within header_timeout)
task<bool> session::handshake() {
    auto* t = stream_.tls();
    if (t == nullptr) {
        co_return true;
    }
    stream_.expires_after(env_.runtime->current()->rt->cfg->limits.header_timeout);
    auto [ec] = co_await t->async_handshake(net::ssl::stream_base::server, use_task_tuple);
    if (ec) {
        get_logger("listener")->debug("[c{}] TLS handshake failed: {}", id_, ec.message());
        co_return false;
    }
    co_return true;
}

// --- phase (http2: true): HTTP/2 when TLS selected h2 by ALPN, or when a cleartext
// connection opens with the client preface (prior knowledge). Anything else is HTTP/1.1;
// the bytes read to tell stay in the buffer for the HTTP/1.1 parser.
task<bool> session::speaks_h2() {
    if (!env_.http2) {
        co_return false;
    }
    if (auto* t = stream_.tls()) {
        co_return alpn_selected(t->native_handle()) == "h2";
    }
    const auto limits = env_.runtime->current()->rt->cfg->limits;
    while (buffer_.size() < h2_client_preface.size()) {
        const std::string_view got(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        if (!h2_client_preface.starts_with(got)) {
            co_return false;
        }
        stream_.expires_after(remaining(accepted_ + limits.header_timeout));
        auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(2048), deferred_tuple);
        if (ec) {
            co_return false;  // the HTTP/1.1 path sees the same end
        }
        buffer_.commit(n);
    }
    const std::string_view got(static_cast<const char*>(buffer_.data().data()),
                               h2_client_preface.size());
    co_return got == h2_client_preface;
}

// --- phase: idle until the first byte of the next request. A new connection has until
// header_timeout (counted from accept) for its whole head; a kept-alive one may idle for
// idle_timeout. Pipelined bytes already buffered skip the wait.
task<bool> session::wait_for_request(bool first) {
    const auto limits = env_.runtime->current()->rt->cfg->limits;
    idle_ = true;
    if (env_.registry->draining()) {
        co_return false;
    }
    if (buffer_.size() == 0) {
        stream_.expires_after(first ? remaining(accepted_ + limits.header_timeout)
                                    : clock::duration(limits.idle_timeout));
        auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(2048), deferred_tuple);
        if (ec) {
            co_return false;
        }
        buffer_.commit(n);
    }
    idle_ = false;
    head_deadline_ =
        first ? accepted_ + limits.header_timeout : clock::now() + limits.header_timeout;
    co_return true;
}

// --- the request script
task<bool> session::serve(exchange& ex) {
    const auto& cfg = *ex.rt.cfg;
    if (auto r = co_await read_head(ex); !r) {
        co_return false;
    }
    const auto& head = ex.parser.get();
    request_id_for(head, ex.request_id);
    ex.client_keep_alive = head.keep_alive();
    const bool check = cfg.mode == config::proxy_mode::forward_auth;
    // Forward-auth (a gateway's check request): the rules apply to the original request it
    // describes; its body, if any, is never read, so the connection closes after the answer.
    const auto original = check ? original_request_of(head, head.method_string(), head.target())
                                : original_request{head.method_string(), head.target(), {}};
    ex.method = std::string(original.method);

    const auto framing = check_request_framing(head, head.version(),
                                               check ? 0 : cfg.limits.max_body_bytes, ex.framing);
    if (!framing.allowed()) {
        ex.request_end_unknown = true;  // the body's extent is unknown
        co_return co_await refuse(ex, framing);
    }
    // (In forward-auth mode a body is never read: the keep-alive rule closes after the answer.)
    // A WebSocket handshake (never in forward-auth mode, never with a body): authenticated
    // like any request, then tunnelled on the upstream's 101.
    ex.websocket = !check && !ex.framing.has_body() &&
                   is_websocket_upgrade(head, head.version(), head.method_string());
    if (!original.reason.empty()) {
        co_return co_await refuse(ex, {core::decision_kind::bad_request, original.reason});
    }
    core::normalize_target(original.target, ex.target);
    if (ex.target.status != core::path_status::ok) {
        co_return co_await refuse(
            ex, {core::decision_kind::bad_request, core::to_string(ex.target.status)});
    }
    if (core::path_parameters_ambiguous(cfg.routes, ex.method, ex.target.path)) {
        co_return co_await refuse(ex, {core::decision_kind::bad_request, "ambiguous_path"});
    }
    auto decided = authorize_now(ex);
    if (!decided) {
        decided = co_await authorize(ex);
    }
    const auto decision = *decided;
    if (!decision.allowed()) {
        co_return co_await refuse(ex, decision);
    }
    if (check) {
        co_return co_await answer_allowed(ex);
    }
    upstream_pool* upstream = ex.rt.upstream_for(env_.loop);
    if (upstream == nullptr) {
        co_return co_await refuse(ex, {core::decision_kind::upstream_unavailable, "no_upstream"});
    }
    const auto forwarded = co_await forward_request(ex, *upstream, *env_.m);
    switch (forwarded.how) {
        case forward_result::end::relayed:
            co_return ex.keep_alive;
        case forward_result::end::client_gone:
            co_return false;
        case forward_result::end::refused:
            break;
    }
    co_return co_await refuse(ex, forwarded.refusal);
}

// --- phase: read the request head (header_timeout, max_header_bytes)
task<bool> session::read_head(exchange& ex) {
    const auto& limits = ex.rt.cfg->limits;
    ex.parser.header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header_bytes, UINT32_MAX)));
    ex.parser.body_limit(boost::none);  // max_body_bytes is enforced by the session/relay
    stream_.expires_after(remaining(head_deadline_));
    auto [ec, n] = co_await http::async_read_header(stream_, buffer_, ex.parser, deferred_tuple);
    stream_.expires_never();
    if (!ec) {
        co_return true;
    }
    // Refusals before the head was understood: the rest of the stream is unknown, so the
    // connection closes after the answer.
    ex.request_end_unknown = true;
    generate_request_id(ex.request_id);
    if (ec == http::error::header_limit) {
        co_await refuse(ex, {core::decision_kind::headers_too_large, ""});
    } else if (is_parse_error(ec)) {
        co_await refuse(ex, {core::decision_kind::bad_request, "malformed_request"});
    }
    // Otherwise: timeout (slowloris), reset or EOF: nothing useful can be sent.
    co_return false;
}

// --- phase: route, token and policy (proxy/auth/request_auth.hpp, shared with HTTP/2 streams).
// Without I/O when the authenticator can answer at once (a cached token): no coroutine for
// the common case. nullopt: await authorize() (same Authorization values).
std::optional<core::auth_decision> session::authorize_now(exchange& ex) {
    auto& authorization = authorization_;
    authorization.clear();
    for (auto [it, end] = ex.parser.get().equal_range(http::field::authorization); it != end;
         ++it) {
        authorization.push_back(it->value());
    }
    auto r = authorize_request_now(ex.rt, *env_.m, ex.method, ex.target.path, authorization);
    if (!r) {
        return std::nullopt;
    }
    return apply(ex, std::move(*r));
}

task<core::auth_decision> session::authorize(exchange& ex) {
    auto r = co_await authorize_request(ex.rt, *env_.m, ex.method, ex.target.path, authorization_);
    co_return apply(ex, std::move(r));
}

core::auth_decision session::apply(exchange& ex, request_auth r) {
    ex.token_type = r.token_type;
    ex.cache = r.cache;
    ex.id = std::move(r.id);
    return r.decision;
}

// --- phase: end of the connection. After a refusal the client may still be sending (a body
// we never read); closing at once would reset the connection and could destroy our answer in
// its receive buffer, so the send side is shut and input drained briefly (lingering close).
task<void> session::close() {
    if (auto* t = stream_.tls()) {
        stream_.expires_after(std::chrono::milliseconds(250));
        co_await t->async_shutdown(use_task_tuple);
    } else if (linger_ && stream_.is_open()) {
        stream_.shutdown_send();
        stream_.expires_after(std::chrono::seconds(2));
        std::array<char, 8192> sink{};
        std::size_t drained = 0;
        while (drained < 4 * 1024 * 1024) {
            auto [ec, n] = co_await stream_.async_read_some(net::buffer(sink), deferred_tuple);
            if (ec) {
                break;
            }
            drained += n;
        }
    }
    stream_.close();
}

void session::close_if_idle() {
    if (h2_) {
        h2_close_if_idle(*h2_);
        return;
    }
    if (idle_) {
        stream_.close();
    }
}

}  // namespace session_detail

task<void> run_session(net::ip::tcp::socket socket, const session_env& env) {
    auto peer = session_detail::peer_ip_of(socket);
    session_detail::session s(session_detail::make_stream(std::move(socket), env), std::move(peer),
                              env);
    co_await s.run();
}

task<void> run_session(any_stream stream, std::string peer_ip, const session_env& env) {
    session_detail::session s(std::move(stream), std::move(peer_ip), env);
    co_await s.run();
}

}  // namespace clerk::proxy
