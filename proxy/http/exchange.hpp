#pragma once
// INTERNAL (Beast-heavy): include from proxy/ sources only.
//
// One request/response on a downstream connection: the state the session phases and the relay
// share. Lives in the session coroutine's frame for the duration of one request.
#include "core/auth_decision.hpp"
#include "core/path_normalizer.hpp"
#include "core/verification_cache.hpp"
#include "proxy/http/connection_registry.hpp"
#include "proxy/http/message_rules.hpp"
#include "proxy/net/any_stream.hpp"
#include "proxy/runtime.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace clerk::proxy {

namespace http = boost::beast::http;

/// Bounded body buffer: request and response bodies move through it in chunks of this size,
/// which (with the parsers' header limits) bounds a connection's memory whatever the body size.
inline constexpr std::size_t body_chunk_bytes = 64 * 1024;

/// A connection's body buffer: allocated when its first body moves (never zero-filled: it is
/// always written before it is read) and reused by the connection's later requests, so a
/// request without a body, or a kept-alive connection's next one, costs no allocation.
class body_chunk {
public:
    char* get() {
        if (!data_) {
            data_ = std::make_unique_for_overwrite<char[]>(body_chunk_bytes);
        }
        return data_.get();
    }

private:
    std::unique_ptr<char[]> data_;
};

/// A connection's storage that its requests reuse, so that the steady state allocates nothing:
/// kept by the session for the connection's life.
struct connection_buffers {
    body_chunk chunk;
    std::string wire;                ///< message heads serialized by hand (http_wire.hpp)
    std::string scratch;             ///< built header values (identity headers)
    beast::flat_buffer upstream;     ///< bytes read from the upstream connection in use
    std::string request_id;          ///< the current request's id
    core::normalized_target target;  ///< the current request's normalized target
};

/// How forwarding one request to the upstream ended (proxy/upstream/relay.hpp).
struct forward_result {
    enum class end : std::uint8_t {
        relayed,      ///< a response (or a tunnel) went to the client; ex.keep_alive says more
        client_gone,  ///< the client connection broke or was cut: close without writing
        refused,      ///< nothing of a response was written: the session answers `refusal`
    };
    end how = end::relayed;
    core::auth_decision refusal{};  ///< refused: the §6 answer (502, 504, 413, 400) and reason

    static forward_result relayed() { return {}; }
    static forward_result client_gone() { return {end::client_gone, {}}; }
    static forward_result refused(core::auth_decision d) { return {end::refused, d}; }
};

struct exchange {
    exchange(any_stream& c, beast::flat_buffer& b, request_parser<http::buffer_body>& p,
             const runtime& r, const connection_registry& reg, connection_buffers& bufs,
             std::string_view peer, bool tls)
        : client(c),
          client_buffer(b),
          parser(p),
          rt(r),
          registry(reg),
          chunk(bufs.chunk),
          wire(bufs.wire),
          scratch(bufs.scratch),
          up_buffer(bufs.upstream),
          peer_ip(peer),
          downstream_tls(tls),
          request_id(bufs.request_id),
          target(bufs.target) {
        target.status = core::path_status::ok;  // nothing of the previous request shows through
        target.path.clear();
        target.query.clear();
        target.has_query = false;
    }
    // --- the downstream side (owned by the session)
    any_stream& client;
    beast::flat_buffer& client_buffer;
    request_parser<http::buffer_body>& parser;
    const runtime& rt;
    const connection_registry& registry;
    body_chunk& chunk;
    std::string& wire;
    std::string& scratch;
    beast::flat_buffer& up_buffer;
    std::string_view peer_ip;
    bool downstream_tls = false;

    // --- what the session learned about the request
    std::chrono::steady_clock::time_point start;
    std::string& request_id;  ///< the connection's buffer (connection_buffers::request_id)
    std::string method;
    core::normalized_target& target;  ///< the connection's buffer (connection_buffers::target)
    request_framing framing;
    std::shared_ptr<const core::identity> id;  ///< set when authenticated
    std::optional<core::token_type> token_type;
    std::optional<core::cache_result> cache;
    bool client_keep_alive = false;    ///< the head asks to go on (HTTP/1.1 default, 1.0 opt-in)
    bool request_end_unknown = false;  ///< its framing was refused: nothing after it can be read
    bool websocket = false;  ///< a WebSocket upgrade to forward (proxy/http/message_rules.hpp)

    // --- the outcome
    int status = 0;
    std::uint64_t bytes = 0;                ///< response body bytes written to the client
    std::optional<std::uint64_t> bytes_in;  ///< a tunnel's bytes client -> upstream
    bool status_counted = false;            ///< requests_total already has it (a 101)
    std::optional<double> upstream_ms;
    bool body_consumed = false;    ///< the request body was read completely
    bool close_delimited = false;  ///< the response body ends when the connection closes
    bool keep_alive = false;       ///< decided by decide_keep_alive(), announced in the head

    /// The keep-alive rule, the one place it is decided: called by whoever renders the response
    /// head (the relay, a refusal, the forward-auth answer), which announces the result. The
    /// connection serves another request when the client asked for it, the request's end is
    /// known and its body (if any) was read to the end, the response's end is known without a
    /// close, the request was not an upgrade (switched: the connection carries the tunnel;
    /// refused: the client may already be sending frames), and no drain is under way.
    bool decide_keep_alive() {
        keep_alive = client_keep_alive && !request_end_unknown &&
                     (!framing.has_body() || body_consumed) && !close_delimited && !websocket &&
                     !registry.draining();
        return keep_alive;
    }
};

}  // namespace clerk::proxy
