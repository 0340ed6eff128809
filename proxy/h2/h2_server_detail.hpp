#pragma once
// INTERNAL: include from proxy/h2/h2_server.cpp and proxy/h2/h2_server_stream.cpp only.
//
// The class behind h2_server.hpp's h2_server_connection, defined in two halves: h2_server.cpp
// (the connection: the frame engine on the socket, the read loop, the single writer, the idle
// deadline, drain and close) and h2_server_stream.cpp (one task per stream: request checks,
// authentication, forwarding, the response, the access record).
#include "core/auth_decision.hpp"
#include "proxy/h2/h2_common.hpp"
#include "proxy/h2/h2_frames.hpp"
#include "proxy/h2/h2_server.hpp"
#include "proxy/h2/h2_stream.hpp"
#include "proxy/http/header_fields.hpp"
#include "proxy/net/net.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}  // namespace spdlog

namespace clerk::core {
struct identity;
struct normalized_target;
}  // namespace clerk::core

namespace clerk::proxy {

struct runtime;

namespace detail {

/// The "http2" logger (defined in h2_server.cpp).
const std::shared_ptr<spdlog::logger>& h2_log();

/// One stream's task state (defined in h2_server_stream.cpp).
struct stream_state;

}  // namespace detail

/// The socket side of an HTTP/2 connection: reads into the frame engine (h2_frames.hpp), one
/// writer coroutine sends what it produces, one task per stream decides and forwards it.
class h2_server_connection : public std::enable_shared_from_this<h2_server_connection> {
public:
    h2_server_connection(any_stream& io, beast::flat_buffer& buffer, const session_env& env,
                         std::string peer_ip, bool tls, std::uint64_t conn_id,
                         const loop_executor& ex);

    task<void> run();

    void close_if_idle();
    void close_now();

private:
    // --- the connection (h2_server.cpp)
    bool feed();
    void update_idle();
    task<void> writer(std::shared_ptr<h2_server_connection> self);

    // --- the streams (h2_server_stream.cpp)
    void start_stream(const std::shared_ptr<h2::server_stream>& s);
    void respond(detail::stream_state& st, int status, h2::header_list fields, bool end);
    void refuse(detail::stream_state& st, const core::auth_decision& d, std::string_view request_id,
                bool grpc, bool head, int& status_out, std::uint64_t& bytes_out);
    task<void> stream_task(std::shared_ptr<h2_server_connection> /*keep*/,
                           std::shared_ptr<detail::stream_state> st);
    void answer_allowed(detail::stream_state& st, const runtime& rt, std::string_view request_id,
                        const core::identity* id);
    task<core::auth_decision> forward(detail::stream_state& st, const runtime& rt,
                                      const header_fields& fields, const std::string& method,
                                      const core::identity* ident,
                                      const core::normalized_target& target,
                                      const std::string& request_id, int& status,
                                      std::optional<double>& upstream_ms);

    any_stream& io_;
    beast::flat_buffer& in_;
    const session_env& env_;
    std::string peer_ip_;
    bool tls_;
    std::uint64_t conn_id_;
    loop_executor ex_;
    std::optional<h2::server_frames> frames_;
    h2::wakeup write_wake_;
    h2::wakeup done_wake_;
    int tasks_ = 0;
    bool closing_ = false;
    bool draining_ = false;
    bool idle_armed_ = false;
    bool writing_ = false;         // a write to the client is in progress
    std::uint64_t write_gen_ = 0;  // which one
    bool forward_auth_ = false;
    std::chrono::steady_clock::duration idle_timeout_ = std::chrono::seconds(60);
};

}  // namespace clerk::proxy
