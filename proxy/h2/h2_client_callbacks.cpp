// The HTTP/2 client's nghttp2 callbacks (the connection is h2_client.cpp): a stream is bridged
// to its downstream stream_io — the response head and trailers collected from HEADERS, the
// response body written into the downstream pipe (the connection window returned at once, the
// stream's when the client has taken the bytes), the request body read straight from the
// downstream pipe by the data provider (its credit returns to the client as nghttp2 takes it),
// request trailers sent after it; end_stream() finishes or aborts the response when the stream
// closes.
#include "proxy/h2/h2_client_detail.hpp"

#include "proxy/h2/h2_common.hpp"
#include "proxy/h2/h2_stream.hpp"

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace clerk::proxy::h2 {
namespace {

using detail::client_stream;

}  // namespace

void client_connection::end_stream(client_stream& cs, std::uint32_t error) {
    if (cs.closed) {
        return;
    }
    cs.closed = true;
    cs.error = error;
    if (cs.io == nullptr) {
        return;
    }
    auto& res = *cs.io->res;
    if (cs.headers_done && !res.eof) {
        if (error == NGHTTP2_NO_ERROR) {
            res.finish();
        } else {
            res.abort();
        }
    }
    cs.io->wake->notify();
}

client_stream* client_connection::stream_of(nghttp2_session* s, std::int32_t id) {
    return static_cast<client_stream*>(nghttp2_session_get_stream_user_data(s, id));
}

int client_connection::on_header(nghttp2_session* s, const nghttp2_frame* f,
                                 const std::uint8_t* name, std::size_t namelen,
                                 const std::uint8_t* value, std::size_t valuelen,
                                 std::uint8_t /*flags*/, void* /*ud*/) {
    auto* cs = stream_of(s, f->hd.stream_id);
    if (cs == nullptr || cs->io == nullptr || f->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        if (n == ":status") {
            int st = 0;
            std::from_chars(v.data(), v.data() + v.size(), st);
            cs->status = st;
        } else if (!n.starts_with(':') && !is_connection_specific(n) && n != "x-request-id") {
            cs->headers.emplace_back(std::string(n), std::string(v));
        }
    } else if (cs->headers_done && !n.starts_with(':')) {
        cs->io->res->trailers.emplace_back(std::string(n), std::string(v));
    }
    return 0;
}

int client_connection::on_frame_recv(nghttp2_session* s, const nghttp2_frame* f, void* /*ud*/) {
    auto* cs = stream_of(s, f->hd.stream_id);
    if (cs == nullptr || cs->io == nullptr) {
        return 0;
    }
    const bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS) {
        if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
            if (cs->status >= 200) {
                cs->headers_done = true;
                cs->end_on_headers = end;
            } else {
                cs->headers.clear();  // 1xx: the final head follows
            }
            cs->io->wake->notify();
        } else if (end && cs->headers_done) {
            cs->io->res->finish();  // trailers end the stream
        }
    } else if (f->hd.type == NGHTTP2_DATA && end && cs->headers_done) {
        cs->io->res->finish();
    }
    return 0;
}

int client_connection::on_data_chunk(nghttp2_session* s, std::uint8_t /*flags*/, std::int32_t id,
                                     const std::uint8_t* data, std::size_t len, void* /*ud*/) {
    // As on the server side: the connection window is returned at once (a slow client must
    // not stall the other streams multiplexed on this upstream connection), the stream's
    // window when the client has taken the bytes.
    nghttp2_session_consume_connection(s, len);
    auto* cs = stream_of(s, id);
    if (cs == nullptr || cs->io == nullptr || !cs->headers_done) {
        nghttp2_session_consume_stream(s, id, len);
        return 0;
    }
    cs->io->res->write(data, len);
    return 0;
}

int client_connection::on_stream_close(nghttp2_session* s, std::int32_t id, std::uint32_t error,
                                       void* ud) {
    auto& c = self_of(ud);
    const auto it = c.streams_.find(id);
    if (it == c.streams_.end()) {
        return 0;
    }
    const auto cs = std::move(it->second);
    c.streams_.erase(it);
    nghttp2_session_set_stream_user_data(s, id, nullptr);
    end_stream(*cs, error);
    if (c.streams_.empty()) {
        c.idle_since_ = clock::now();
        if (c.closing_) {
            // Closed from the writer's turn, not inside nghttp2's callback.
            c.wake_.notify();
        }
    }
    return 0;
}

ssize_t client_connection::read_request_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf,
                                             std::size_t length, std::uint32_t* flags,
                                             nghttp2_data_source* src, void* /*ud*/) {
    auto& cs = *static_cast<client_stream*>(src->ptr);
    if (cs.io == nullptr) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    auto& req = *cs.io->req;
    if (req.aborted) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    const std::size_t n = req.read(buf, length);
    cs.sent += n;
    if (cs.io->max_body_bytes > 0 && cs.sent > cs.io->max_body_bytes) {
        cs.too_large = true;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (req.eof && req.pending() == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        header_list trailers;
        for (const auto& t : req.trailers) {
            if (cs.io->trailer_allowed && cs.io->trailer_allowed(t.first)) {
                trailers.push_back(t);
            }
        }
        if (!trailers.empty()) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            const auto nva = make_nvs(trailers);
            nghttp2_submit_trailer(s, id, nva.data(), nva.size());
        }
        return static_cast<ssize_t>(n);
    }
    if (n == 0) {
        cs.deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
}

}  // namespace clerk::proxy::h2
