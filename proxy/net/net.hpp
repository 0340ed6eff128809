#pragma once
// The Asio vocabulary of proxy/: the coroutine and executor types, completion tokens. Asio's
// core headers only; include the heavy Beast headers only in .cpp files.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace clerk::proxy {
namespace net = boost::asio;

/// Completion token for the coroutines off the request path (`net::awaitable`: the Clerk
/// client, JWKS, Redis, the admin listener, signals): a tuple (error_code first), no throw.
inline constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

/// The executor of one event loop (one io_context; one thread in the proxy; a test may run one
/// io_context on several threads: a coroutine is still resumed by one handler at a time). The
/// request path's coroutines
/// (`task`) run on it by its concrete type: no type-erased executor is copied, compared or
/// destroyed per operation, as `net::awaitable<T>` (any_io_executor) does. Work that runs on
/// strands (the Clerk client, JWKS refresh, Redis) keeps `net::awaitable` and is reached from
/// a task through co_spawn or an async operation, never awaited directly.
using loop_executor = net::io_context::executor_type;

/// A coroutine of the request path (session, relay, upstream pool, HTTP/2, tunnel, the
/// authenticator's entry points).
template <class T = void>
using task = net::awaitable<T, loop_executor>;

/// Completion token that makes an async operation awaitable from a `task`.
inline constexpr net::use_awaitable_t<loop_executor> use_task{};
/// The same, completing with a tuple (error_code first) instead of throwing. For operations
/// combined with awaitable operators (`a || b`), Beast's TLS handshake and shutdown (whose
/// signatures cannot return a deferred operation) and operations whose arguments are not
/// trivially destructible; any other lone operation takes `deferred_tuple`.
inline constexpr auto use_task_tuple = net::as_tuple(use_task);

/// Completion token for `co_await op(..., deferred_tuple)` in a coroutine: the operation is
/// awaited directly, where `use_task` would first create an initiating coroutine frame (one
/// heap block and a frame switch per I/O call). Completes with a tuple (error_code first).
inline constexpr auto deferred_tuple = net::as_tuple(net::deferred);

/// The loop an I/O object's executor belongs to. Every I/O object of the proxy is created on an
/// io_context, so its type-erased executor always names one.
inline loop_executor loop_of(const net::any_io_executor& ex) {
    auto& ctx = net::query(ex, net::execution::context);
    return static_cast<net::io_context&>(ctx).get_executor();
}

}  // namespace clerk::proxy
