#pragma once
// The HTTP/2 server's frame engine, without sockets or Asio: bytes in (receive), frames out
// (produce), requests and their bodies as server_stream objects. nghttp2 does the framing,
// HPACK, stream states and flow control; this class applies the proxy's rules to it — the
// decoded header block counted against max_header_bytes, SETTINGS_MAX_CONCURRENT_STREAMS,
// per-stream flow control tied to the body pipes (a stream's window returns only when its bytes
// have moved on; the connection's at once, so one slow stream cannot stall the others).
// proxy/h2/h2_server.cpp drives it from a socket; tests/fuzz/h2_frames_fuzz.cpp from fuzz input.
// Not thread-safe: one connection, one thread.
#include "proxy/h2/h2_common.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

namespace clerk::proxy::h2 {

/// One request stream. Its owner (the code answering it) sets req.on_readable,
/// res.on_consumed and on_end; the engine sets req.on_consumed and res.on_readable.
struct server_stream {
    explicit server_stream(std::int32_t i) : id(i) {}
    std::int32_t id;
    header_list headers;  ///< as received, pseudo-headers included (only those that fit)
    std::size_t header_bytes = 0;
    bool too_large = false;        ///< the decoded block passed max_header_bytes
    bool has_body = false;         ///< the request HEADERS did not end the stream
    bool discard_body = false;     ///< the rest of the request body is consumed unread
    body_pipe req;                 ///< client -> proxy
    body_pipe res;                 ///< proxy -> client (after respond())
    bool submitted = false;        ///< a response was submitted
    bool closed = false;           ///< done, reset by the peer, or the connection is gone
    std::function<void()> on_end;  ///< called once when `closed` becomes true

    // engine-internal
    bool started = false;
    bool deferred = false;
};

class server_frames {
public:
    struct settings {
        std::size_t max_concurrent_streams = 100;
        std::size_t max_header_bytes = 16384;
    };
    /// `on_request`: a request's header block is complete (the stream is open; answer it with
    /// respond()). `on_output`: frames are waiting for produce().
    server_frames(settings s, std::function<void(const std::shared_ptr<server_stream>&)> on_request,
                  std::function<void()> on_output);
    ~server_frames();
    server_frames(const server_frames&) = delete;
    server_frames& operator=(const server_frames&) = delete;

    /// Creates the session and queues the server's SETTINGS. False on allocation failure.
    bool start();
    /// Feeds bytes read from the client (the client preface first). False on a connection
    /// error: a GOAWAY is queued, nothing more is read.
    bool receive(const std::uint8_t* data, std::size_t n);
    /// Appends frames to send to `out` until it holds `max` bytes or nothing is pending.
    void produce(std::string& out, std::size_t max);
    /// False once the session neither reads nor writes (GOAWAY exchanged, error).
    bool alive() const;

    /// Answers `s`: `status` and `fields` (lower-case names); with `end` the stream ends with
    /// the header block (no body; trailers-only answers carry grpc-status here), else the body
    /// is read from s.res until it is finished (trailers: s.res.trailers).
    void respond(server_stream& s, int status, const header_list& fields, bool end);
    /// Drain: GOAWAY with the last stream seen; open streams go on.
    void goaway();
    /// The connection is gone: every open stream ends (on_end).
    void end_all();

    std::size_t open_streams() const { return streams_.size(); }
    const std::string& last_error() const { return last_error_; }

private:
    static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void*);
    static int on_header(nghttp2_session*, const nghttp2_frame*, const std::uint8_t*, std::size_t,
                         const std::uint8_t*, std::size_t, std::uint8_t, void*);
    static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);
    static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t, const std::uint8_t*,
                             std::size_t, void*);
    static int on_stream_close(nghttp2_session*, std::int32_t, std::uint32_t, void*);
    static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t*, std::size_t,
                             std::uint32_t*, nghttp2_data_source*, void*);
    void start_stream(std::int32_t id);
    static void end_stream(server_stream& s);

    settings settings_;
    std::function<void(const std::shared_ptr<server_stream>&)> on_request_;
    std::function<void()> on_output_;
    nghttp2_session* ng_ = nullptr;
    std::map<std::int32_t, std::shared_ptr<server_stream>> streams_;
    std::vector<std::shared_ptr<server_stream>> ended_;  // end_all()'s, kept for nghttp2
    std::string last_error_;
};

}  // namespace clerk::proxy::h2
