#pragma once
// INTERNAL to proxy/http/session.cpp and session_answers.cpp: one HTTP/1.1 connection.
// session.cpp holds the connection's life (TLS handshake, HTTP/2 detection, the request loop,
// reading a head, authorizing, closing); session_answers.cpp what the proxy writes itself (the
// forward-auth "allowed" answer, the docs/reference.md §6 refusals) and the per-request record
// (metrics, access log).
#include "core/auth_decision.hpp"
#include "proxy/auth/request_auth.hpp"
#include "proxy/h2/h2_server.hpp"
#include "proxy/http/exchange.hpp"
#include "proxy/http/session.hpp"
#include "proxy/net/any_stream.hpp"

#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clerk::proxy::session_detail {

using boost::system::error_code;
using clock = std::chrono::steady_clock;
using tcp = net::ip::tcp;

any_stream make_stream(tcp::socket socket, const session_env& env);
/// The client's address as the upstream sees it (X-Forwarded-For) and the access log shows it.
std::string peer_ip_of(const tcp::socket& socket);

class session {
public:
    session(any_stream stream, std::string peer_ip, const session_env& env)
        : env_(env), stream_(std::move(stream)), peer_ip_(std::move(peer_ip)) {}

    task<void> run();

    any_stream::tcp_stream& lowest() {
        return stream_.tls() ? beast::get_lowest_layer(*stream_.tls()) : *stream_.tcp();
    }

private:
    task<bool> handshake();
    task<bool> speaks_h2();
    task<bool> wait_for_request(bool first);
    task<bool> serve(exchange& ex);
    task<bool> read_head(exchange& ex);
    std::optional<core::auth_decision> authorize_now(exchange& ex);
    task<core::auth_decision> authorize(exchange& ex);
    core::auth_decision apply(exchange& ex, request_auth r);
    task<bool> answer_allowed(exchange& ex);                 // session_answers.cpp
    task<bool> refuse(exchange& ex, core::auth_decision d);  // session_answers.cpp
    task<void> close();
    void close_if_idle();

    void log_exchange(const exchange& ex,
                      std::chrono::system_clock::time_point wall_start);  // session_answers.cpp

    static clock::duration remaining(clock::time_point deadline) {
        return std::max<clock::duration>(deadline - clock::now(), std::chrono::milliseconds(1));
    }

    const session_env& env_;
    any_stream stream_;
    std::string peer_ip_;
    beast::flat_buffer buffer_;
    connection_buffers bufs_;                      // reused by every request of the connection
    std::vector<std::string_view> authorization_;  // this request's Authorization values
    std::uint64_t id_ = 0;
    clock::time_point accepted_;
    clock::time_point head_deadline_;
    bool idle_ = true;
    bool linger_ = false;
    std::shared_ptr<h2_server_connection> h2_;  // set while the connection speaks HTTP/2
};

}  // namespace clerk::proxy::session_detail
