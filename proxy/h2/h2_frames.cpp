#include "proxy/h2/h2_frames.hpp"

#include <charconv>
#include <iterator>

namespace clerk::proxy::h2 {
namespace {

server_frames& self_of(void* ud) {
    return *static_cast<server_frames*>(ud);
}

server_stream* stream_of(nghttp2_session* s, std::int32_t id) {
    return static_cast<server_stream*>(nghttp2_session_get_stream_user_data(s, id));
}

}  // namespace

server_frames::server_frames(settings s,
                             std::function<void(const std::shared_ptr<server_stream>&)> on_request,
                             std::function<void()> on_output)
    : settings_(s), on_request_(std::move(on_request)), on_output_(std::move(on_output)) {}

server_frames::~server_frames() {
    if (ng_ != nullptr) {
        nghttp2_session_del(ng_);
    }
    ended_.clear();  // after the session: it may refer to them until deleted
}

bool server_frames::start() {
    // Credit is returned by hand (on_data_chunk, req.on_consumed), so that a slow upstream holds
    // its client back instead of filling the proxy's memory.
    session_callbacks cb;
    cb.on_begin_headers = on_begin_headers;
    cb.on_header = on_header;
    cb.on_frame_recv = on_frame_recv;
    cb.on_data_chunk = on_data_chunk;
    cb.on_stream_close = on_stream_close;
    ng_ = new_session(session_role::server, cb, this);
    if (ng_ == nullptr) {
        return false;
    }
    const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
         static_cast<std::uint32_t>(
             std::min<std::size_t>(settings_.max_concurrent_streams, UINT32_MAX))},
        // Advisory for the client (the proxy counts the decoded block itself, on_header).
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         static_cast<std::uint32_t>(
             std::min<std::size_t>(settings_.max_header_bytes * 2 + 4096, UINT32_MAX))},
    };
    return nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv, std::size(iv)) == 0;
}

bool server_frames::receive(const std::uint8_t* data, std::size_t n) {
    if (n == 0) {
        return true;
    }
    const auto rv = nghttp2_session_mem_recv(ng_, data, n);
    if (on_output_) {
        on_output_();
    }
    if (rv < 0) {
        last_error_ = nghttp2_strerror(static_cast<int>(rv));
        return false;
    }
    return true;
}

void server_frames::produce(std::string& out, std::size_t max) {
    while (out.size() < max) {
        const std::uint8_t* data = nullptr;
        const auto n = nghttp2_session_mem_send(ng_, &data);
        if (n <= 0) {
            if (n < 0) {
                last_error_ = nghttp2_strerror(static_cast<int>(n));
            }
            break;
        }
        out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
}

bool server_frames::alive() const {
    return ng_ != nullptr &&
           (nghttp2_session_want_read(ng_) != 0 || nghttp2_session_want_write(ng_) != 0);
}

void server_frames::respond(server_stream& s, int status, const header_list& fields, bool end) {
    if (s.closed || s.submitted) {
        return;
    }
    s.submitted = true;
    char digits[8];
    const auto r = std::to_chars(digits, digits + sizeof digits, status);
    std::vector<nghttp2_nv> nva;
    nva.reserve(fields.size() + 1);
    nva.push_back(
        make_nv(":status", std::string_view(digits, static_cast<std::size_t>(r.ptr - digits))));
    for (const auto& [n, v] : fields) {
        nva.push_back(make_nv(n, v));
    }
    nghttp2_data_provider prd;
    prd.source.ptr = &s;
    prd.read_callback = read_body;
    nghttp2_submit_response(ng_, s.id, nva.data(), nva.size(), end ? nullptr : &prd);
    if (end) {
        s.res.eof = true;
    }
    if (on_output_) {
        on_output_();
    }
}

void server_frames::goaway() {
    nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    if (on_output_) {
        on_output_();
    }
}

void server_frames::end_all() {
    auto streams = std::move(streams_);
    streams_.clear();
    for (auto& [id, s] : streams) {
        if (ng_ != nullptr) {
            nghttp2_session_set_stream_user_data(ng_, id, nullptr);
        }
        // nghttp2 still knows the stream (and its data provider points at it) until the
        // session is deleted: the body is cut and the object kept alive as long as the session.
        s->res.aborted = true;
        end_stream(*s);
        ended_.push_back(std::move(s));
    }
}

void server_frames::end_stream(server_stream& s) {
    if (s.closed) {
        return;
    }
    s.closed = true;
    if (!s.req.eof) {
        s.req.abort();
    }
    if (s.on_end) {
        s.on_end();
    }
}

void server_frames::start_stream(std::int32_t id) {
    const auto it = streams_.find(id);
    if (it == streams_.end() || it->second->started) {
        return;
    }
    auto s = it->second;
    s->started = true;
    s->req.on_consumed = [this, id](std::size_t n) {
        nghttp2_session_consume_stream(ng_, id, n);
        if (on_output_) {
            on_output_();
        }
    };
    s->res.on_readable = [this, w = s.get()] {
        if (w->deferred && !w->closed) {
            w->deferred = false;
            nghttp2_session_resume_data(ng_, w->id);
        }
        if (on_output_) {
            on_output_();
        }
    };
    on_request_(s);
}

// --- nghttp2 callbacks (user_data = this)

int server_frames::on_begin_headers(nghttp2_session* s, const nghttp2_frame* f, void* ud) {
    auto& c = self_of(ud);
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    auto st = std::make_shared<server_stream>(f->hd.stream_id);
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st.get());
    c.streams_.emplace(f->hd.stream_id, std::move(st));
    return 0;
}

int server_frames::on_header(nghttp2_session* s, const nghttp2_frame* f, const std::uint8_t* name,
                             std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                             std::uint8_t /*flags*/, void* ud) {
    auto& c = self_of(ud);
    auto* st = stream_of(s, f->hd.stream_id);
    if (st == nullptr || f->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        // The decoded block counts as an HTTP/1.1 head would ("name: value\r\n").
        st->header_bytes += namelen + valuelen + 4;
        if (st->too_large || st->header_bytes > c.settings_.max_header_bytes) {
            // Refused with a 431; the fields that fit are kept (content-type decides whether
            // the refusal is a gRPC one), the rest is dropped unread.
            st->too_large = true;
            return 0;
        }
        st->headers.emplace_back(std::string(reinterpret_cast<const char*>(name), namelen),
                                 std::string(reinterpret_cast<const char*>(value), valuelen));
    } else {
        // Trailers count against the same bound as the head (HPACK lets a few input bytes
        // expand to many); past it they are dropped.
        st->header_bytes += namelen + valuelen + 4;
        if (st->header_bytes <= c.settings_.max_header_bytes) {
            st->req.trailers.emplace_back(
                std::string(reinterpret_cast<const char*>(name), namelen),
                std::string(reinterpret_cast<const char*>(value), valuelen));
        }
    }
    return 0;
}

int server_frames::on_frame_recv(nghttp2_session* s, const nghttp2_frame* f, void* ud) {
    auto& c = self_of(ud);
    auto* st = stream_of(s, f->hd.stream_id);
    if (st == nullptr) {
        return 0;
    }
    const bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        st->has_body = !end;
        if (end) {
            st->req.eof = true;
        }
        c.start_stream(f->hd.stream_id);
    } else if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end) {
        st->req.finish();
    }
    return 0;
}

int server_frames::on_data_chunk(nghttp2_session* s, std::uint8_t /*flags*/, std::int32_t id,
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

int server_frames::on_stream_close(nghttp2_session* s, std::int32_t id, std::uint32_t /*error*/,
                                   void* ud) {
    auto& c = self_of(ud);
    const auto it = c.streams_.find(id);
    if (it == c.streams_.end()) {
        return 0;
    }
    nghttp2_session_set_stream_user_data(s, id, nullptr);
    const auto st = std::move(it->second);
    c.streams_.erase(it);
    end_stream(*st);
    return 0;
}

ssize_t server_frames::read_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf,
                                 std::size_t length, std::uint32_t* flags, nghttp2_data_source* src,
                                 void* /*ud*/) {
    auto* st = static_cast<server_stream*>(src->ptr);
    if (st->res.aborted) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM: the body broke
    }
    const std::size_t n = st->res.read(buf, length);
    if (st->res.pending() == 0 && st->res.eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!st->res.trailers.empty()) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            const auto nva = make_nvs(st->res.trailers);
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

}  // namespace clerk::proxy::h2
