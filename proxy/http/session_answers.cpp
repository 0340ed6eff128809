// What a session answers itself (session_detail.hpp): the forward-auth "allowed" answer and
// the docs/reference.md §6 refusals (JSON, or gRPC trailers-only), and the per-request record
// (metrics, access log). The connection's life is in session.cpp.
#include "core/grpc_status.hpp"
#include "core/problem.hpp"
#include "proxy/access_log.hpp"
#include "proxy/http/connection_registry.hpp"
#include "proxy/http/forward_auth.hpp"
#include "proxy/http/session_detail.hpp"
#include "proxy/metrics.hpp"
#include "proxy/runtime.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace clerk::proxy::session_detail {

// --- phase (forward-auth): the original request may pass; the gateway copies the identity
task<bool> session::answer_allowed(exchange& ex) {
    const unsigned version = ex.parser.get().version() == 10 ? 10 : 11;
    ex.status = 200;
    const bool keep = ex.decide_keep_alive();
    ex.wire.clear();
    append_check_allowed(ex.wire, version, keep, ex.request_id, ex.rt.rules, ex.id.get(),
                         ex.scratch);
    linger_ = !keep;
    stream_.expires_after(ex.rt.cfg->limits.idle_timeout);
    auto [ec, n] = co_await net::async_write(stream_, net::buffer(ex.wire), deferred_tuple);
    if (ec) {
        co_return false;
    }
    co_return keep;
}

// --- phase: answer with a docs/reference.md §6 problem (the only way the proxy refuses)
task<bool> session::refuse(exchange& ex, core::auth_decision d) {
    const auto spec = core::problem_for(d.kind);
    const unsigned version =
        ex.parser.is_header_done() && ex.parser.get().version() == 10 ? 10 : 11;
    http::response<http::string_body> res{static_cast<http::status>(spec.status), version};
    res.set(http::field::content_type, "application/json");
    res.set("X-Request-Id", ex.request_id);
    if (ex.rt.cfg->mode == config::proxy_mode::forward_auth) {
        res.set(http::field::cache_control, "no-store");  // a gateway must not reuse it
    }
    if (!spec.www_authenticate.empty()) {
        res.set(http::field::www_authenticate, spec.www_authenticate);
    }
    if (!spec.retry_after.empty()) {
        res.set(http::field::retry_after, spec.retry_after);
    }
    res.body() = core::problem_body(d.kind, d.reason, ex.request_id);
    // Never in forward-auth mode: there a 2xx means "allow" to the gateway.
    if (ex.rt.cfg->mode == config::proxy_mode::proxy && ex.parser.is_header_done() &&
        core::is_grpc_content_type(ex.parser.get()[http::field::content_type])) {
        // A gRPC client (gRPC-Web over HTTP/1.1) reads the status from grpc-status, not from
        // a JSON body: HTTP 200, trailers-only. Metrics and the access log keep the §6 status.
        res.result(http::status::ok);
        res.set(http::field::content_type, "application/grpc");
        res.set("grpc-status", std::to_string(core::grpc_status_for_http(spec.status)));
        res.set("grpc-message", core::grpc_message_for(d.kind, d.reason));
        res.body().clear();
    }
    ex.status = spec.status;
    const bool keep = ex.decide_keep_alive();
    res.keep_alive(keep);
    res.prepare_payload();
    linger_ = !keep;

    stream_.expires_after(ex.rt.cfg->limits.idle_timeout);
    http::response_serializer<http::string_body> sr{res};
    error_code ec;
    // The check request's own method frames the answer (in forward-auth mode ex.method is
    // the original request's).
    if (ex.parser.is_header_done() && ex.parser.get().method() == http::verb::head) {
        std::tie(ec, std::ignore) = co_await http::async_write_header(stream_, sr, deferred_tuple);
    } else {
        std::tie(ec, std::ignore) = co_await http::async_write(stream_, sr, deferred_tuple);
        ex.bytes = res.body().size();
    }
    if (ec) {
        co_return false;
    }
    co_return keep;
}

void session::log_exchange(const exchange& ex, std::chrono::system_clock::time_point wall_start) {
    if (ex.method.empty() && ex.status == 0) {
        return;  // nothing was understood (e.g. a port probe)
    }
    if (ex.status != 0 && !ex.status_counted) {
        env_.m->request_done(ex.status);
    }
    if (!ex.rt.cfg->log.access_log) {
        return;  // no record built, nothing copied
    }
    access_record r;
    r.time = wall_start;
    r.request_id = ex.request_id;
    r.method = ex.method;
    r.path = ex.target.status == core::path_status::ok ? std::string_view(ex.target.path)
                                                       : std::string_view();
    r.status = ex.status;
    r.duration_ms = std::chrono::duration<double, std::milli>(clock::now() - ex.start).count();
    r.bytes = ex.bytes;
    r.token_type = ex.token_type;
    if (ex.id) {
        r.subject = ex.id->who->subject;
        r.token_id = ex.id->token_id;
    }
    r.cache = ex.cache;
    r.upstream_ms = ex.upstream_ms;
    r.bytes_in = ex.bytes_in;
    r.protocol =
        ex.parser.is_header_done() && ex.parser.get().version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
    log_access(ex.rt.cfg->log, r);
}

}  // namespace clerk::proxy::session_detail
