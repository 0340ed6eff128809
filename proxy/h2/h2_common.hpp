#pragma once
// INTERNAL: include from proxy/h2/*.cpp only.
//
// Pieces shared by the HTTP/2 server (downstream) and client (upstream) sides: a body pipe that
// carries one direction of a stream's body with flow-control hooks, and nghttp2 header helpers.
// Everything here lives on one event loop (the connection's): no locks. No Asio here: the frame
// engine (h2_frames.hpp) and its fuzz target use it.
#include "core/ascii.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clerk::proxy::h2 {

using header_list = std::vector<std::pair<std::string, std::string>>;

/// What a session reports to; on_begin_headers is optional (the client has none).
struct session_callbacks {
    nghttp2_on_begin_headers_callback on_begin_headers = nullptr;
    nghttp2_on_header_callback on_header = nullptr;
    nghttp2_on_frame_recv_callback on_frame_recv = nullptr;
    nghttp2_on_data_chunk_recv_callback on_data_chunk = nullptr;
    nghttp2_on_stream_close_callback on_stream_close = nullptr;
};

enum class session_role { client, server };

/// A new nghttp2 session (the server's or the client's) reporting to `user`. Flow-control credit
/// is returned by hand (nghttp2_session_consume, when a body pipe's bytes are taken), never
/// automatically, so that a slow reader holds its peer back instead of filling the proxy's
/// memory. nullptr when nghttp2 cannot create it.
inline nghttp2_session* new_session(session_role role, const session_callbacks& cb, void* user) {
    nghttp2_session_callbacks* cbs = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return nullptr;
    }
    if (cb.on_begin_headers != nullptr) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb.on_begin_headers);
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb.on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb.on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb.on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb.on_stream_close);
    nghttp2_option* opt = nullptr;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return nullptr;
    }
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_session* ng = nullptr;
    const int rv = role == session_role::server ? nghttp2_session_server_new2(&ng, cbs, user, opt)
                                                : nghttp2_session_client_new2(&ng, cbs, user, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    return rv == 0 ? ng : nullptr;
}

/// One direction of a stream's body. The producer appends; the consumer takes bytes and the
/// `on_consumed` hook returns the credit to the producer's flow control (a WINDOW_UPDATE, or a
/// wake-up of a coroutine waiting for room). Bounded by the producer: it waits while pending()
/// is above its limit, and the HTTP/2 peers cannot send beyond their window.
struct body_pipe {
    std::string buf;
    std::size_t off = 0;
    bool eof = false;      ///< the producer is done (trailers, if any, are set)
    bool aborted = false;  ///< the producer failed: the consumer resets the stream
    header_list trailers;
    std::uint64_t total = 0;                       ///< bytes produced so far
    std::function<void()> on_readable;             ///< data, eof or abort arrived
    std::function<void(std::size_t)> on_consumed;  ///< n bytes left the pipe

    std::size_t pending() const { return buf.size() - off; }
    void write(const std::uint8_t* data, std::size_t n) {
        buf.append(reinterpret_cast<const char*>(data), n);
        total += n;
        if (on_readable) {
            on_readable();
        }
    }
    void finish() {
        eof = true;
        if (on_readable) {
            on_readable();
        }
    }
    void abort() {
        aborted = true;
        if (on_readable) {
            on_readable();
        }
    }
    /// Copies up to `max` bytes into `dst`.
    std::size_t read(std::uint8_t* dst, std::size_t max) {
        const std::size_t n = std::min(max, pending());
        std::memcpy(dst, buf.data() + off, n);
        consume(n);
        return n;
    }
    std::string_view peek() const { return std::string_view(buf).substr(off); }
    void consume(std::size_t n) {
        off += n;
        if (off == buf.size()) {
            buf.clear();
            off = 0;
        }
        if (n > 0 && on_consumed) {
            on_consumed(n);
        }
    }
};

/// A producer waits while this much is pending in a pipe (about one HTTP/2 window).
inline constexpr std::size_t pipe_high_water = 64 * 1024;

inline nghttp2_nv make_nv(std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP2_NV_FLAG_NONE};
}

inline std::vector<nghttp2_nv> make_nvs(const header_list& h) {
    std::vector<nghttp2_nv> out;
    out.reserve(h.size());
    for (const auto& [n, v] : h) {
        out.push_back(make_nv(n, v));
    }
    return out;
}

using core::to_lower;

/// Connection-specific fields (RFC 9113 §8.2.2) that an HTTP/2 message must not carry; `te` is
/// allowed only as "trailers" and handled by the caller.
inline bool is_connection_specific(std::string_view lower_name) {
    return lower_name == "connection" || lower_name == "keep-alive" ||
           lower_name == "proxy-connection" || lower_name == "transfer-encoding" ||
           lower_name == "upgrade" || lower_name == "host" || lower_name == "te" ||
           lower_name == "http2-settings";
}

}  // namespace clerk::proxy::h2
