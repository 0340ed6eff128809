#pragma once
// INTERNAL (Beast-heavy): include from proxy/ sources only.
//
// A small pipelined Redis client for the shared cache (docs/reference.md §15): hiredis's RESP layer
// (redisFormatCommandArgv to encode, redisReader to parse; Debian's libhiredis 0.14 has no TLS)
// over the proxy's own connector (upstream_pool: TCP, TLS with verification and SNI, unix
// sockets). One connection, kept up in the background (connect, AUTH, SELECT, reconnect with
// backoff); commands are pipelined on it and answered in order.
//
// Redis is never in the failure path: a command gives up after `timeout` and returns nullopt,
// and so does every command while the connection is down.
//
// Thread safety: none; use from the executor it was created on (one event loop: the control
// plane's, where verifications run).
#include "config/config.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace clerk::proxy {

struct redis_reply {
    enum class kind { string, nil, status, error, integer, other } type = kind::other;
    std::string str;  ///< string, status and error text
    long long integer = 0;
};

class redis_client {
public:
    /// nullptr and `error` set when the TLS context cannot be built (bad ca_file).
    static std::shared_ptr<redis_client> create(boost::asio::any_io_executor exec,
                                                const config::shared_cache_config& cfg,
                                                std::string& error);
    virtual ~redis_client() = default;

    /// Starts the background connection (idempotent).
    virtual void start() = 0;
    /// Closes the connection and stops reconnecting; later commands return nullopt.
    virtual void stop() = 0;
    virtual bool connected() const = 0;

    /// Sends one command (pipelined behind others) and waits at most the configured timeout
    /// for its reply. nullopt: not connected, timed out or the connection broke.
    virtual boost::asio::awaitable<std::optional<redis_reply>> command(
        std::vector<std::string> args) = 0;
};

}  // namespace clerk::proxy
