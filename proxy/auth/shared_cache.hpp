#pragma once
// INTERNAL: include from proxy/ sources only.
//
// The shared verification cache (docs/reference.md §15): Clerk verification results of opaque
// tokens, shared by the replicas through Redis. Looked up on a local miss before Clerk is called;
// every such Clerk result is written back without delaying the answer. Redis is never in the
// failure path: any error is a miss that the caller handles as if there were no shared cache.
//
// Thread safety: use from the executor it was created on (the control plane's, where
// verifications run).
#include "config/config.hpp"
#include "core/shared_entry.hpp"
#include "proxy/metrics.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <string>

namespace clerk::proxy {

class redis_client;

class shared_cache : public std::enable_shared_from_this<shared_cache> {
public:
    /// nullptr when cache.shared is off; nullptr and `error` set when it cannot be built.
    static std::shared_ptr<shared_cache> create(boost::asio::any_io_executor exec,
                                                const config::config& cfg, metrics& m,
                                                std::string& error);
    shared_cache(boost::asio::any_io_executor exec, const config::config& cfg, metrics& m,
                 std::shared_ptr<redis_client> redis);

    void start();
    void stop();

    /// The Redis key of `token` (prefix + keyed digest).
    std::string key_for(std::string_view token) const { return codec_.key_for(token); }

    /// The entry under `key` when it is there, authentic and unexpired; nullopt otherwise
    /// (miss, error, tampered, expired). Counts clerk_proxy_shared_cache_lookups_total.
    boost::asio::awaitable<std::optional<core::shared_entry_codec::entry>> lookup(std::string key);

    /// Writes a Clerk result in the background (never waited for). A positive entry lives until
    /// min(now + cache.ttl, the token's expiration), a negative one cache.negative_ttl.
    void store_positive(std::string key, const core::identity& id);
    void store_negative(std::string key, std::string_view reason);

private:
    void store(std::string key, std::string value, long long until_ms);

    boost::asio::any_io_executor exec_;
    core::shared_entry_codec codec_;
    config::millis ttl_;
    config::millis negative_ttl_;
    metrics& m_;
    std::shared_ptr<redis_client> redis_;
};

}  // namespace clerk::proxy
