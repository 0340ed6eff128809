// The HTTP/2 server's per-stream work (h2_server.cpp is the connection): start_stream() starts
// one task per request stream, stream_task() runs the same checks and request_auth decision as
// HTTP/1.1 on the stream's fields, then refuses (refuse()), answers a forward-auth check
// (answer_allowed()) or forwards the stream upstream (forward(): h2_upstream_h1 or h2_client)
// and writes the access record. The class is declared in h2_server_detail.hpp.
#include "proxy/h2/h2_server_detail.hpp"

#include "core/grpc_status.hpp"
#include "core/path_normalizer.hpp"
#include "core/problem.hpp"
#include "core/request_decision.hpp"
#include "proxy/access_log.hpp"
#include "proxy/auth/request_auth.hpp"
#include "proxy/h2/h2_frames.hpp"
#include "proxy/h2/h2_stream.hpp"
#include "proxy/h2/h2_upstream_h1.hpp"
#include "proxy/http/connection_registry.hpp"
#include "proxy/http/forward_auth.hpp"
#include "proxy/http/message_rules.hpp"
#include "proxy/logging.hpp"
#include "proxy/runtime.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/co_spawn.hpp>

#include <charconv>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace clerk::proxy {

namespace detail {

/// What a stream's task keeps besides the engine's stream: its wake-up (request data, room in
/// the response pipe, the stream's end) and the way to stop its upstream I/O.
struct stream_state {
    stream_state(std::shared_ptr<h2::server_stream> st, const loop_executor& ex)
        : s(std::move(st)), wake(ex) {}
    std::shared_ptr<h2::server_stream> s;
    h2::wakeup wake;
    std::function<void()> cancel_upstream;  // closes what the forwarder waits on
};

}  // namespace detail

namespace {

using clock = std::chrono::steady_clock;
using h2::header_list;
namespace http = boost::beast::http;
using detail::h2_log;
using detail::stream_state;

}  // namespace

void h2_server_connection::start_stream(const std::shared_ptr<h2::server_stream>& s) {
    auto st = std::make_shared<stream_state>(s, ex_);
    s->req.on_readable = [w = st.get()] { w->wake.notify(); };
    s->res.on_consumed = [w = st.get()](std::size_t) { w->wake.notify(); };
    s->on_end = [w = st.get()] {
        if (w->cancel_upstream) {
            w->cancel_upstream();
        }
        w->wake.notify();
    };
    ++tasks_;
    update_idle();
    net::co_spawn(ex_, stream_task(shared_from_this(), st), [](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                h2_log()->error("HTTP/2 stream: unexpected exception: {}", ex.what());
            }
        }
    });
}

void h2_server_connection::respond(stream_state& st, int status, header_list fields, bool end) {
    frames_->respond(*st.s, status, fields, end);
}

/// A §6 refusal on the stream (gRPC-shaped for gRPC requests).
void h2_server_connection::refuse(stream_state& st, const core::auth_decision& d,
                                  std::string_view request_id, bool grpc, bool head,
                                  int& status_out, std::uint64_t& bytes_out) {
    const auto spec = core::problem_for(d.kind);
    status_out = spec.status;
    header_list f;
    if (grpc) {
        f.emplace_back("content-type", "application/grpc");
        f.emplace_back("grpc-status", std::to_string(core::grpc_status_for_http(spec.status)));
        f.emplace_back("grpc-message", core::grpc_message_for(d.kind, d.reason));
        f.emplace_back("x-request-id", std::string(request_id));
        respond(st, 200, std::move(f), true);
    } else {
        auto body = core::problem_body(d.kind, d.reason, request_id);
        f.emplace_back("content-type", "application/json");
        if (forward_auth_) {
            f.emplace_back("cache-control", "no-store");  // a gateway must not reuse it
        }
        f.emplace_back("content-length", std::to_string(body.size()));
        f.emplace_back("x-request-id", std::string(request_id));
        if (!spec.www_authenticate.empty()) {
            f.emplace_back("www-authenticate", std::string(spec.www_authenticate));
        }
        if (!spec.retry_after.empty()) {
            f.emplace_back("retry-after", std::string(spec.retry_after));
        }
        if (head) {
            respond(st, spec.status, std::move(f), true);
        } else {
            respond(st, spec.status, std::move(f), false);
            bytes_out = body.size();
            st.s->res.write(reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
            st.s->res.finish();
        }
    }
    // The rest of a request body is not needed: consume it as it comes.
    st.s->discard_body = true;
    if (st.s->req.pending() > 0) {
        st.s->req.consume(st.s->req.pending());
    }
}

task<void> h2_server_connection::stream_task(std::shared_ptr<h2_server_connection> /*keep*/,
                                             std::shared_ptr<stream_state> st) {
    // (The connection's idle deadline is managed by update_idle(), from the open streams.)
    const auto pin = env_.runtime->current();
    const runtime& rt = *pin->rt;
    const auto& cfg = *rt.cfg;
    const auto start = clock::now();
    const auto wall_start = std::chrono::system_clock::now();

    std::string method;
    std::string path;
    std::string authority;
    std::string cookies;
    header_fields fields;
    for (const auto& [n, v] : st->s->headers) {
        if (n == ":method") {
            method = v;
        } else if (n == ":path") {
            path = v;
        } else if (n == ":authority") {
            authority = v;
        } else if (n.starts_with(':')) {
            continue;
        } else if (n == "cookie") {
            // RFC 9113 §8.2.3: split cookie fields are joined for HTTP/1.1.
            cookies += cookies.empty() ? "" : "; ";
            cookies += v;
        } else {
            fields.insert(n, v);
        }
    }
    if (!cookies.empty()) {
        fields.set(http::field::cookie, cookies);
    }
    if (!authority.empty() && fields.count(http::field::host) == 0) {
        fields.set(http::field::host, authority);
    }
    std::string request_id;
    request_id_for(fields, request_id);
    // gRPC-shaped refusals only in proxy mode: in forward-auth mode a 2xx means "allow" to
    // the gateway, whatever the content type of the request it asks about.
    const bool grpc = cfg.mode == config::proxy_mode::proxy &&
                      core::is_grpc_content_type(fields[http::field::content_type]);

    core::normalized_target target;
    request_auth auth;
    auto& d = auth.decision;
    std::optional<std::uint64_t> content_length;
    if (const auto cl = fields[http::field::content_length]; !cl.empty()) {
        std::uint64_t v = 0;
        const auto r = std::from_chars(cl.data(), cl.data() + cl.size(), v);
        if (r.ec == std::errc() && r.ptr == cl.data() + cl.size()) {
            content_length = v;
        }
    }
    if (st->s->too_large) {
        d = {core::decision_kind::headers_too_large, ""};
    } else if (method == "CONNECT" || path.empty() || path[0] != '/') {
        d = {core::decision_kind::bad_request, "malformed_request"};
    } else if (cfg.limits.max_body_bytes > 0 && content_length &&
               *content_length > cfg.limits.max_body_bytes) {
        d = {core::decision_kind::body_too_large, ""};
    }
    const bool check = cfg.mode == config::proxy_mode::forward_auth;
    if (d.allowed()) {
        const auto original =
            check ? original_request_of(fields, method, path) : original_request{method, path, {}};
        if (!original.reason.empty()) {
            d = {core::decision_kind::bad_request, std::string(original.reason)};
        } else {
            core::normalize_target(original.target, target);
            method = std::string(original.method);
            if (target.status != core::path_status::ok) {
                d = {core::decision_kind::bad_request, core::to_string(target.status)};
            } else if (core::path_parameters_ambiguous(cfg.routes, method, target.path)) {
                d = {core::decision_kind::bad_request, "ambiguous_path"};
            } else {
                std::vector<std::string_view> authorization;
                for (auto [it, end] = fields.equal_range(http::field::authorization); it != end;
                     ++it) {
                    authorization.push_back(it->value());
                }
                if (auto now =
                        authorize_request_now(rt, *env_.m, method, target.path, authorization)) {
                    auth = std::move(*now);
                } else {
                    auth =
                        co_await authorize_request(rt, *env_.m, method, target.path, authorization);
                }
            }
        }
    }

    int status = 0;
    std::uint64_t bytes = 0;
    std::optional<double> upstream_ms;
    if (st->s->closed) {
        // The client reset the stream while it was being decided: nothing to answer.
    } else if (!d.allowed()) {
        refuse(*st, d, request_id, grpc, method == "HEAD", status, bytes);
    } else if (check) {
        answer_allowed(*st, rt, request_id, auth.id.get());
        status = 200;
    } else {
        const auto forwarded = co_await forward(*st, rt, fields, method, auth.id.get(), target,
                                                request_id, status, upstream_ms);
        if (!forwarded.allowed()) {
            if (st->s->submitted) {
                // The response had started: the client can only be told by a reset.
                if (!st->s->closed) {
                    st->s->res.abort();
                }
            } else if (!st->s->closed) {
                refuse(*st, forwarded, request_id, grpc, method == "HEAD", status, bytes);
            }
        } else {
            bytes = st->s->res.total;
        }
    }
    if (status != 0) {
        env_.m->request_done(status);
        env_.m->http2_request();
    }
    if (cfg.log.access_log && status != 0) {
        access_record r;
        r.time = wall_start;
        r.request_id = request_id;
        r.method = method;
        r.path = target.status == core::path_status::ok ? std::string_view(target.path)
                                                        : std::string_view();
        r.status = status;
        r.duration_ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
        r.bytes = bytes;
        r.token_type = auth.token_type;
        if (auth.id) {
            r.subject = auth.id->who->subject;
            r.token_id = auth.id->token_id;
        }
        r.cache = auth.cache;
        r.upstream_ms = upstream_ms;
        r.protocol = "HTTP/2";
        log_access(cfg.log, r);
    }
    // Whatever of the request body still comes is not needed any more: its credit returns
    // as it arrives, so the client can finish the stream.
    st->s->discard_body = true;
    if (st->s->req.pending() > 0) {
        st->s->req.consume(st->s->req.pending());
    }
    // The engine may outlive this task's state: its hooks must not reach it any more.
    st->cancel_upstream = nullptr;
    st->s->on_end = nullptr;
    st->s->req.on_readable = nullptr;
    st->s->res.on_consumed = nullptr;
    --tasks_;
    done_wake_.notify();
    write_wake_.notify();
}

/// Forward-auth over HTTP/2: the same answer as on HTTP/1.1 (proxy/http/forward_auth.hpp), its
/// fields taken from the serialized head.
void h2_server_connection::answer_allowed(stream_state& st, const runtime& rt,
                                          std::string_view request_id, const core::identity* id) {
    std::string wire;
    std::string scratch;
    append_check_allowed(wire, 11, true, request_id, rt.rules, id, scratch);
    header_list f;
    std::string_view rest(wire);
    rest.remove_prefix(std::min(rest.size(), rest.find("\r\n") + 2));  // status line
    while (!rest.empty()) {
        const auto eol = rest.find("\r\n");
        const auto line = rest.substr(0, eol);
        rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
        const auto colon = line.find(':');
        if (line.empty() || colon == std::string_view::npos) {
            continue;
        }
        auto name = h2::to_lower(line.substr(0, colon));
        auto value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') {
            value.remove_prefix(1);
        }
        if (h2::is_connection_specific(name)) {
            continue;
        }
        f.emplace_back(std::move(name), std::string(value));
    }
    st.s->discard_body = true;
    respond(st, 200, std::move(f), true);
}

task<core::auth_decision> h2_server_connection::forward(
    stream_state& st, const runtime& rt, const header_fields& fields, const std::string& method,
    const core::identity* ident, const core::normalized_target& target,
    const std::string& request_id, int& status, std::optional<double>& upstream_ms) {
    const auto& cfg = *rt.cfg;
    upstream_pool* pool = rt.upstream_for(env_.loop);
    if (pool == nullptr) {
        co_return core::auth_decision{core::decision_kind::upstream_unavailable, "no_upstream"};
    }
    const auto fp = forward_params_for(rt.rules, cfg, ident, peer_ip_, tls_, request_id);

    h2::stream_io io;
    io.req = &st.s->req;
    io.res = &st.s->res;
    io.request_id = request_id;
    io.wake = &st.wake;
    io.request_has_body = st.s->has_body;
    io.max_body_bytes = cfg.limits.max_body_bytes;
    io.trailer_allowed = [&rt, fwd = cfg.auth.forward_authorization](std::string_view name) {
        // Nothing the head rewrite sets or strips may come back as a trailer.
        static constexpr std::string_view set_by_proxy[] = {"x-forwarded-for",  "x-forwarded-proto",
                                                            "x-forwarded-host", "x-request-id",
                                                            "content-length",   "forwarded"};
        for (const auto n : set_by_proxy) {
            if (name == n) {
                return false;
            }
        }
        return !name.starts_with(':') && !h2::is_connection_specific(name) &&
               !rt.rules.must_remove(name, {}) && (fwd || name != "authorization");
    };
    io.client_idle_timeout = cfg.limits.idle_timeout;
    io.respond = [this, &st](int s, header_list f, bool end) { respond(st, s, std::move(f), end); };
    io.client_gone = [&st] { return st.s->closed; };
    std::string full_path = cfg.upstream.base_path + target.path;
    if (target.has_query) {
        full_path += '?';
        full_path += target.query;
    }
    core::auth_decision d;
    if (cfg.upstream.protocol == config::upstream_protocol::http1) {
        d = co_await h2::forward_h1(io, *pool, method, full_path, fields, fp, st.cancel_upstream);
    } else {
        header_fields out;
        rewrite_request_headers(fields, out, fp);
        io.request.emplace_back(":method", method);
        io.request.emplace_back(
            ":scheme", cfg.upstream.scheme == config::upstream_scheme::https ? "https" : "http");
        io.request.emplace_back(":authority", std::string(out[http::field::host]));
        io.request.emplace_back(":path", full_path);
        for (const auto& f : out) {
            auto name = h2::to_lower(f.name_string());
            if (h2::is_connection_specific(name)) {
                continue;
            }
            io.request.emplace_back(std::move(name), std::string(f.value()));
        }
        // te: trailers is the one hop-by-hop field HTTP/2 keeps (gRPC needs it).
        if (beast::iequals(fields[http::field::te], "trailers")) {
            io.request.emplace_back("te", "trailers");
        }
        d = co_await h2::forward_h2(io, *pool);
    }
    status = io.status;
    upstream_ms = io.upstream_ms;
    if (upstream_ms) {
        env_.m->upstream_duration(*upstream_ms / 1000.0);
    }
    co_return d;
}

}  // namespace clerk::proxy
