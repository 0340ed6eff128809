#include "proxy/h2/h2_server.hpp"

#include "core/grpc_status.hpp"
#include "core/path_normalizer.hpp"
#include "core/problem.hpp"
#include "core/request_decision.hpp"
#include "proxy/access_log.hpp"
#include "proxy/connection_registry.hpp"
#include "proxy/forward_auth.hpp"
#include "proxy/h2/h2_stream.hpp"
#include "proxy/h2/h2_upstream_h1.hpp"
#include "proxy/logging.hpp"
#include "proxy/message_rules.hpp"
#include "proxy/request_auth.hpp"
#include "proxy/runtime.hpp"
#include "proxy/upstream_pool.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <charconv>
#include <map>

namespace clerk::proxy {
namespace {

using clock = std::chrono::steady_clock;
using h2::body_pipe;
using h2::header_list;
namespace http = boost::beast::http;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

const std::shared_ptr<spdlog::logger>& h2_log() {
    static const auto log = get_logger("http2");
    return log;
}

/// One request stream of the connection.
struct stream_state {
    stream_state(std::int32_t i, const net::any_io_executor& ex) : id(i), wake(ex) {}
    std::int32_t id;
    header_list headers;  // as received, pseudo-headers included
    std::size_t header_bytes = 0;
    bool too_large = false;
    bool started = false;  // its task was spawned
    bool discard_body = false;
    bool has_body = false;  // the request HEADERS did not end the stream
    body_pipe req;
    body_pipe res;
    bool deferred = false;   // the data provider waits for res
    bool submitted = false;  // a response was submitted
    bool closed = false;     // nghttp2 closed the stream (done, reset, connection gone)
    h2::wakeup wake;
    std::function<void()> cancel_upstream;  // closes what the forwarder waits on
};

}  // namespace

class h2_server_connection : public std::enable_shared_from_this<h2_server_connection> {
public:
    h2_server_connection(any_stream& io, beast::flat_buffer& buffer, const session_env& env,
                         std::string peer_ip, bool tls, std::uint64_t conn_id,
                         const net::any_io_executor& ex)
        : io_(io),
          in_(buffer),
          env_(env),
          peer_ip_(std::move(peer_ip)),
          tls_(tls),
          conn_id_(conn_id),
          ex_(ex),
          write_wake_(ex),
          done_wake_(ex) {}

    ~h2_server_connection() {
        if (ng_ != nullptr) {
            nghttp2_session_del(ng_);
        }
    }

    net::awaitable<void> run() {
        const auto pin = env_.runtime->current();
        const auto& cfg = *pin->rt->cfg;
        max_header_bytes_ = cfg.limits.max_header_bytes;
        idle_timeout_ = cfg.limits.idle_timeout;
        if (!init_session(cfg)) {
            co_return;
        }
        auto self = shared_from_this();
        ++tasks_;
        net::co_spawn(ex_, writer(self), [](std::exception_ptr) {});
        bool ok = feed(static_cast<const std::uint8_t*>(in_.data().data()), in_.size());
        in_.consume(in_.size());
        while (ok && !closing_) {
            if (nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0) {
                break;
            }
            if (draining_ && streams_.empty()) {
                break;
            }
            if (streams_.empty()) {
                io_.expires_after(idle_timeout_);
            } else {
                io_.expires_never();
            }
            auto [ec, n] = co_await io_.async_read_some(in_.prepare(16 * 1024), use_tuple);
            if (ec) {
                break;
            }
            in_.commit(n);
            ok = feed(static_cast<const std::uint8_t*>(in_.data().data()), in_.size());
            in_.consume(in_.size());
        }
        // Let the writer send what is queued (GOAWAY, last frames), then end every stream.
        closing_ = true;
        write_wake_.notify();
        for (auto& [id, st] : streams_) {
            end_stream_state(*st);
        }
        while (tasks_ > 1) {
            co_await done_wake_.wait();
        }
        // Only the writer is left: it ends once nothing is queued (or the socket broke).
        io_.expires_after(std::chrono::seconds(1));
        write_wake_.notify();
        while (tasks_ > 0) {
            co_await done_wake_.wait();
        }
        streams_.clear();
    }

    void close_if_idle() {
        draining_ = true;
        if (streams_.empty()) {
            io_.close();
            return;
        }
        nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_),
                              NGHTTP2_NO_ERROR, nullptr, 0);
        write_wake_.notify();
    }
    void close_now() {
        closing_ = true;
        io_.close();
    }

private:
    bool init_session(const config::config& cfg) {
        nghttp2_session_callbacks* cbs = nullptr;
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        nghttp2_option* opt = nullptr;
        nghttp2_option_new(&opt);
        // The proxy returns flow-control credit when a body's bytes have moved on upstream, so
        // a slow upstream holds the client back instead of filling the proxy's memory.
        nghttp2_option_set_no_auto_window_update(opt, 1);
        const int rv = nghttp2_session_server_new2(&ng_, cbs, this, opt);
        nghttp2_option_del(opt);
        nghttp2_session_callbacks_del(cbs);
        if (rv != 0) {
            return false;
        }
        const nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
             static_cast<std::uint32_t>(
                 std::min<std::size_t>(cfg.limits.max_concurrent_streams, UINT32_MAX))},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
             static_cast<std::uint32_t>(
                 std::min<std::size_t>(cfg.limits.max_header_bytes * 2 + 4096, UINT32_MAX))},
        };
        return nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv, std::size(iv)) == 0;
    }

    bool feed(const std::uint8_t* data, std::size_t n) {
        if (n == 0) {
            return true;
        }
        const auto rv = nghttp2_session_mem_recv(ng_, data, n);
        write_wake_.notify();
        if (rv < 0) {
            h2_log()->debug("[c{}] HTTP/2 connection error: {}", conn_id_,
                            nghttp2_strerror(static_cast<int>(rv)));
            return false;
        }
        return true;
    }

    // --- the single writer: what nghttp2 has queued, gathered into one write at a time
    net::awaitable<void> writer(std::shared_ptr<h2_server_connection> /*keep*/) {
        std::string out;
        for (;;) {
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
                if (closing_ && tasks_ <= 1) {
                    break;
                }
                if (draining_ && streams_.empty()) {
                    io_.close();  // GOAWAY sent, nothing open: done
                }
                co_await write_wake_.wait();
                continue;
            }
            auto [ec, n] = co_await net::async_write(io_, net::buffer(out), use_tuple);
            if (ec) {
                closing_ = true;
                io_.close();
                break;
            }
        }
        --tasks_;
        done_wake_.notify();
    }

    void signal_write() { write_wake_.notify(); }

    void end_stream_state(stream_state& st) {
        st.closed = true;
        if (!st.req.eof) {
            st.req.abort();
        }
        if (st.cancel_upstream) {
            st.cancel_upstream();
        }
        st.wake.notify();
    }

    // --- nghttp2 callbacks (user_data = this)
    static h2_server_connection& self_of(void* ud) {
        return *static_cast<h2_server_connection*>(ud);
    }
    static stream_state* stream_of(nghttp2_session* s, std::int32_t id) {
        return static_cast<stream_state*>(nghttp2_session_get_stream_user_data(s, id));
    }

    static int on_begin_headers(nghttp2_session* s, const nghttp2_frame* f, void* ud) {
        auto& c = self_of(ud);
        if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
            return 0;
        }
        auto st = std::make_shared<stream_state>(f->hd.stream_id, c.ex_);
        nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st.get());
        c.streams_.emplace(f->hd.stream_id, std::move(st));
        return 0;
    }

    static int on_header(nghttp2_session* s, const nghttp2_frame* f, const std::uint8_t* name,
                         std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                         std::uint8_t /*flags*/, void* ud) {
        auto& c = self_of(ud);
        auto* st = stream_of(s, f->hd.stream_id);
        if (st == nullptr || f->hd.type != NGHTTP2_HEADERS) {
            return 0;
        }
        std::string n(reinterpret_cast<const char*>(name), namelen);
        std::string v(reinterpret_cast<const char*>(value), valuelen);
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
            // The decoded block counts as an HTTP/1.1 head would ("name: value\r\n").
            st->header_bytes += namelen + valuelen + 4;
            if (st->header_bytes > c.max_header_bytes_) {
                st->too_large = true;
                return 0;
            }
            st->headers.emplace_back(std::move(n), std::move(v));
        } else {
            st->req.trailers.emplace_back(std::move(n), std::move(v));
        }
        return 0;
    }

    static int on_frame_recv(nghttp2_session* s, const nghttp2_frame* f, void* ud) {
        auto& c = self_of(ud);
        auto* st = stream_of(s, f->hd.stream_id);
        if (st == nullptr) {
            return 0;
        }
        const bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
            if (end) {
                st->req.eof = true;
            }
            st->has_body = !end;
            c.start_stream(f->hd.stream_id);
        } else if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end) {
            st->req.finish();
        }
        return 0;
    }

    static int on_data_chunk(nghttp2_session* s, std::uint8_t /*flags*/, std::int32_t id,
                             const std::uint8_t* data, std::size_t len, void* /*ud*/) {
        // The connection window is returned at once: one stream whose upstream is slow must not
        // stall the connection's other streams. The stream's window returns as its bytes move on.
        nghttp2_session_consume_connection(s, len);
        auto* st = stream_of(s, id);
        if (st == nullptr || st->discard_body || st->closed) {
            nghttp2_session_consume_stream(s, id, len);  // nobody reads it: return the credit
            return 0;
        }
        st->req.write(data, len);
        return 0;
    }

    static int on_stream_close(nghttp2_session* s, std::int32_t id, std::uint32_t /*error*/,
                               void* ud) {
        auto& c = self_of(ud);
        const auto it = c.streams_.find(id);
        if (it == c.streams_.end()) {
            return 0;
        }
        nghttp2_session_set_stream_user_data(s, id, nullptr);
        auto st = std::move(it->second);
        c.streams_.erase(it);
        c.end_stream_state(*st);
        if (c.streams_.empty()) {
            // Idle again: the pending read gets idle_timeout (no deadline while streams run).
            c.io_.expires_after(c.idle_timeout_);
            c.write_wake_.notify();  // a drain may be waiting for the last stream
        }
        return 0;
    }

    static ssize_t read_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf,
                             std::size_t length, std::uint32_t* flags, nghttp2_data_source* src,
                             void* /*ud*/) {
        auto* st = static_cast<stream_state*>(src->ptr);
        if (st->res.aborted) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM: the body broke
        }
        const std::size_t n = st->res.read(buf, length);
        if (st->res.pending() == 0 && st->res.eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            if (!st->res.trailers.empty()) {
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                const auto nva = h2::make_nvs(st->res.trailers);
                nghttp2_submit_trailer(s, id, nva.data(), nva.size());
            }
            return static_cast<ssize_t>(n);
        }
        if (n == 0) {
            st->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
        return static_cast<ssize_t>(n);
    }

    // --- one stream's request
    void start_stream(std::int32_t id) {
        const auto it = streams_.find(id);
        if (it == streams_.end() || it->second->started) {
            return;
        }
        auto st = it->second;
        st->started = true;
        // The pipes' hooks: request body credit back to the client, response body to nghttp2.
        st->req.on_readable = [w = st.get()] { w->wake.notify(); };
        st->req.on_consumed = [this, id](std::size_t n) {
            nghttp2_session_consume_stream(ng_, id, n);
            signal_write();
        };
        st->res.on_readable = [this, w = st.get()] {
            if (w->deferred && !w->closed) {
                w->deferred = false;
                nghttp2_session_resume_data(ng_, w->id);
            }
            signal_write();
        };
        st->res.on_consumed = [w = st.get()](std::size_t) { w->wake.notify(); };
        ++tasks_;
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

    void respond(stream_state& st, int status, header_list fields, bool end) {
        if (st.closed || st.submitted) {
            return;
        }
        st.submitted = true;
        char digits[8];
        const auto r = std::to_chars(digits, digits + sizeof digits, status);
        header_list all;
        all.reserve(fields.size() + 1);
        all.emplace_back(":status", std::string(digits, r.ptr));
        for (auto& f : fields) {
            all.push_back(std::move(f));
        }
        const auto nva = h2::make_nvs(all);
        nghttp2_data_provider prd;
        prd.source.ptr = &st;
        prd.read_callback = read_body;
        nghttp2_submit_response(ng_, st.id, nva.data(), nva.size(), end ? nullptr : &prd);
        if (end) {
            st.res.eof = true;
        }
        signal_write();
    }

    /// A §6 refusal on the stream (gRPC-shaped for gRPC requests).
    void refuse(stream_state& st, const core::auth_decision& d, std::string_view request_id,
                bool grpc, bool head, int& status_out, std::uint64_t& bytes_out) {
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
                st.res.write(reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
                st.res.finish();
            }
        }
        // The rest of a request body is not needed: consume it as it comes.
        st.discard_body = true;
        if (st.req.pending() > 0) {
            st.req.consume(st.req.pending());
        }
    }

    net::awaitable<void> stream_task(std::shared_ptr<h2_server_connection> /*keep*/,
                                     std::shared_ptr<stream_state> st) {
        io_.expires_never();
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
        for (const auto& [n, v] : st->headers) {
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
        const bool grpc = core::is_grpc_content_type(fields[http::field::content_type]);

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
        if (st->too_large) {
            d = {core::decision_kind::headers_too_large, ""};
        } else if (method == "CONNECT" || path.empty() || path[0] != '/') {
            d = {core::decision_kind::bad_request, "malformed_request"};
        } else if (cfg.limits.max_body_bytes > 0 && content_length &&
                   *content_length > cfg.limits.max_body_bytes) {
            d = {core::decision_kind::body_too_large, ""};
        }
        const bool check = cfg.mode == config::proxy_mode::forward_auth;
        if (d.allowed()) {
            const auto original = check ? original_request_of(fields, method, path)
                                        : original_request{method, path, {}};
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
                    auth =
                        co_await authorize_request(rt, *env_.m, method, target.path, authorization);
                }
            }
        }

        int status = 0;
        std::uint64_t bytes = 0;
        std::optional<double> upstream_ms;
        if (st->closed) {
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
                if (st->submitted) {
                    // The response had started: the client can only be told by a reset.
                    if (!st->closed) {
                        st->res.abort();
                    }
                } else if (!st->closed) {
                    refuse(*st, forwarded, request_id, grpc, method == "HEAD", status, bytes);
                }
            } else {
                bytes = st->res.total;
            }
        }
        if (status != 0) {
            env_.m->request_done(status);
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
                r.subject = auth.id->subject;
                r.token_id = auth.id->token_id;
            }
            r.cache = auth.cache;
            r.upstream_ms = upstream_ms;
            log_access(cfg.log, r);
        }
        st->cancel_upstream = nullptr;
        --tasks_;
        done_wake_.notify();
        if (streams_.empty()) {
            write_wake_.notify();
        }
    }

    /// Forward-auth over HTTP/2: the same answer as on HTTP/1.1 (proxy/forward_auth.hpp), its
    /// fields taken from the serialized head.
    void answer_allowed(stream_state& st, const runtime& rt, std::string_view request_id,
                        const core::identity* id) {
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
            auto name = h2::lower(line.substr(0, colon));
            auto value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') {
                value.remove_prefix(1);
            }
            if (h2::is_connection_specific(name)) {
                continue;
            }
            f.emplace_back(std::move(name), std::string(value));
        }
        st.discard_body = true;
        respond(st, 200, std::move(f), true);
    }

    net::awaitable<core::auth_decision> forward(
        stream_state& st, const runtime& rt, const header_fields& fields, const std::string& method,
        const core::identity* ident, const core::normalized_target& target,
        const std::string& request_id, int& status, std::optional<double>& upstream_ms) {
        const auto& cfg = *rt.cfg;
        upstream_pool* pool = rt.upstream_for(env_.loop);
        if (pool == nullptr) {
            co_return core::auth_decision{core::decision_kind::upstream_unavailable, "no_upstream"};
        }
        forward_params fp;
        fp.rules = &rt.rules;
        fp.id = nullptr;
        fp.forward_authorization = cfg.auth.forward_authorization;
        fp.preserve_host = cfg.upstream.preserve_host;
        fp.upstream_host = cfg.upstream.host_header;
        fp.peer_ip = peer_ip_;
        fp.downstream_tls = tls_;
        fp.request_id = request_id;
        fp.id = ident;

        h2::stream_io io;
        io.req = &st.req;
        io.res = &st.res;
        io.request_id = request_id;
        io.wake = &st.wake;
        io.request_has_body = st.has_body;
        io.max_body_bytes = cfg.limits.max_body_bytes;
        io.client_idle_timeout = cfg.limits.idle_timeout;
        io.respond = [this, &st](int s, header_list f, bool end) {
            respond(st, s, std::move(f), end);
        };
        io.client_gone = [&st] { return st.closed; };
        std::string full_path = cfg.upstream.base_path + target.path;
        if (target.has_query) {
            full_path += '?';
            full_path += target.query;
        }
        core::auth_decision d;
        if (cfg.upstream.protocol == config::upstream_protocol::http1) {
            d = co_await h2::forward_h1(io, *pool, method, full_path, fields, fp,
                                        st.cancel_upstream);
        } else {
            header_fields out;
            rewrite_request_headers(fields, out, fp);
            io.request.emplace_back(":method", method);
            io.request.emplace_back(":scheme", cfg.upstream.scheme == config::upstream_scheme::https
                                                   ? "https"
                                                   : "http");
            io.request.emplace_back(":authority", std::string(out[http::field::host]));
            io.request.emplace_back(":path", full_path);
            for (const auto& f : out) {
                auto name = h2::lower(f.name_string());
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
        co_return d;
    }

    any_stream& io_;
    beast::flat_buffer& in_;
    const session_env& env_;
    std::string peer_ip_;
    bool tls_;
    std::uint64_t conn_id_;
    net::any_io_executor ex_;
    nghttp2_session* ng_ = nullptr;
    std::map<std::int32_t, std::shared_ptr<stream_state>> streams_;
    h2::wakeup write_wake_;
    h2::wakeup done_wake_;
    int tasks_ = 0;
    bool closing_ = false;
    bool draining_ = false;
    std::size_t max_header_bytes_ = 16384;
    clock::duration idle_timeout_ = std::chrono::seconds(60);
};

net::awaitable<void> serve_h2(any_stream& io, beast::flat_buffer& buffer, const session_env& env,
                              std::string peer_ip, bool tls, std::uint64_t conn_id,
                              std::shared_ptr<h2_server_connection>& handle) {
    const auto ex = co_await net::this_coro::executor;
    handle = std::make_shared<h2_server_connection>(io, buffer, env, std::move(peer_ip), tls,
                                                    conn_id, ex);
    co_await handle->run();
}

void h2_close_if_idle(h2_server_connection& c) {
    c.close_if_idle();
}
void h2_close_now(h2_server_connection& c) {
    c.close_now();
}

}  // namespace clerk::proxy
