#pragma once
// INTERNAL: include from proxy/h2/h2_client*.cpp only.
//
// The HTTP/2 client's pooled connection, defined in two files: h2_client.cpp (set-up, the read
// and write loops, the calls its streams make, acquire() and the pool's list) and
// h2_client_callbacks.cpp (nghttp2's callbacks, which move a stream's bytes to and from its
// downstream pipes). h2_client_stream.cpp uses it to forward one request (forward_h2).
#include "core/auth_decision.hpp"
#include "proxy/h2/h2_common.hpp"
#include "proxy/h2/h2_stream.hpp"
#include "proxy/net/net.hpp"

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <sys/types.h>

namespace spdlog {
class logger;
}  // namespace spdlog

namespace clerk::proxy {
class any_stream;  // proxy/net/any_stream.hpp
class upstream_pool;
}  // namespace clerk::proxy

namespace clerk::proxy::h2 {

class client_connection;

namespace detail {

/// The "upstream" logger (defined in h2_client.cpp).
const std::shared_ptr<spdlog::logger>& client_log();

struct client_stream {
    stream_io* io = nullptr;
    std::int32_t id = -1;
    header_list headers;
    int status = 0;
    bool headers_done = false;  // the final response head arrived
    bool end_on_headers = false;
    bool closed = false;
    std::uint32_t error = 0;
    bool deferred = false;  // the request data provider waits for the downstream pipe
    std::uint64_t sent = 0;
    bool too_large = false;
    bool reset_sent = false;
};

/// A connection of the pool with room for one more stream, else a new one (h2_client.cpp).
task<std::shared_ptr<client_connection>> acquire(upstream_pool& pool, core::auth_decision& failure);

}  // namespace detail

class client_connection : public std::enable_shared_from_this<client_connection> {
public:
    using clock = std::chrono::steady_clock;

    client_connection(std::unique_ptr<any_stream> io, const loop_executor& ex);
    ~client_connection();

    bool start(const loop_executor& ex);

    bool usable() const;
    bool dead() const { return dead_; }
    /// No stream open and not retired: a candidate for the idle limits (acquire()).
    bool idle() const { return streams_.empty() && !closing_ && !dead_; }
    clock::time_point idle_since() const { return idle_since_; }

    /// Submits the request of `cs`; false when the connection cannot take it. The connection
    /// keeps `cs` until nghttp2 closes the stream (its callbacks may run after the forwarder
    /// returned: then `cs->io` is null).
    bool submit(const std::shared_ptr<detail::client_stream>& cs);

    /// The downstream pipe has more request body: resume the stream's data provider.
    void request_readable(detail::client_stream& cs);
    /// The client took `n` bytes of the response body: credit for the upstream.
    void response_consumed(detail::client_stream& cs, std::size_t n);
    /// The client went away or the deadline passed: reset the upstream stream.
    void cancel(detail::client_stream& cs) { cancel_detached(cs); }
    void cancel_detached(detail::client_stream& cs);
    /// Its forwarder is returning: callbacks for `cs` do nothing from now on.
    void detach(detail::client_stream& cs);
    /// No new stream on this connection; the open ones go on, then a GOAWAY is sent and it is
    /// closed.
    void retire();
    /// True when it just queued the GOAWAY (the writer sends it before anything closes).
    bool close_if_retired();

private:
    // --- h2_client.cpp
    task<void> reader(std::shared_ptr<client_connection> /*keep*/);
    task<void> writer(std::shared_ptr<client_connection> /*keep*/);
    void fail_all();

    // --- h2_client_callbacks.cpp
    static void end_stream(detail::client_stream& cs, std::uint32_t error);
    static client_connection& self_of(void* ud) { return *static_cast<client_connection*>(ud); }
    static detail::client_stream* stream_of(nghttp2_session* s, std::int32_t id);
    static int on_header(nghttp2_session* s, const nghttp2_frame* f, const std::uint8_t* name,
                         std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                         std::uint8_t /*flags*/, void* /*ud*/);
    static int on_frame_recv(nghttp2_session* s, const nghttp2_frame* f, void* /*ud*/);
    static int on_data_chunk(nghttp2_session* s, std::uint8_t /*flags*/, std::int32_t id,
                             const std::uint8_t* data, std::size_t len, void* /*ud*/);
    static int on_stream_close(nghttp2_session* s, std::int32_t id, std::uint32_t error, void* ud);
    static ssize_t read_request_body(nghttp2_session* s, std::int32_t id, std::uint8_t* buf,
                                     std::size_t length, std::uint32_t* flags,
                                     nghttp2_data_source* src, void* /*ud*/);

    std::unique_ptr<any_stream> io_;
    nghttp2_session* ng_ = nullptr;
    std::map<std::int32_t, std::shared_ptr<detail::client_stream>> streams_;
    std::vector<std::shared_ptr<detail::client_stream>> ended_;  // fail_all()'s, kept for nghttp2
    wakeup wake_;
    clock::time_point idle_since_ = clock::now();
    bool dead_ = false;
    bool closing_ = false;
    bool goaway_sent_ = false;
};

}  // namespace clerk::proxy::h2
