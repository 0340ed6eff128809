#pragma once
// INTERNAL (Beast-heavy): include from proxy/ sources only.
//
// One request/response on a downstream connection: the state the session phases and the relay
// share. Lives in the session coroutine's frame for the duration of one request.
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
    bool keep_alive = true;  ///< the client may send another request after this one
    bool websocket = false;  ///< a WebSocket upgrade to forward (proxy/http/message_rules.hpp)

    // --- the outcome
    int status = 0;
    std::uint64_t bytes = 0;                ///< response body bytes written to the client
    std::optional<std::uint64_t> bytes_in;  ///< a tunnel's bytes client -> upstream
    bool status_counted = false;            ///< requests_total already has it (a 101)
    std::optional<double> upstream_ms;
    bool body_consumed = false;  ///< the request body was read completely
    bool client_failed = false;  ///< the client stream broke: close without writing
};

}  // namespace clerk::proxy
