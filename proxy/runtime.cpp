#include "proxy/runtime.hpp"

#include "proxy/auth/auth_factory.hpp"
#include "proxy/auth/shared_cache.hpp"
#include "proxy/logging.hpp"
#include "proxy/upstream/upstream_pool.hpp"

namespace clerk::proxy {
namespace {

bool same_clerk_identity(const config::config& a, const config::config& b) {
    return a.clerk.secret_key == b.clerk.secret_key &&
           a.clerk.machine_secret_key == b.clerk.machine_secret_key &&
           a.clerk.api_url == b.clerk.api_url;
}

bool same_cache_settings(const config::cache_config& a, const config::cache_config& b) {
    return a.max_entries == b.max_entries && a.ttl == b.ttl && a.negative_ttl == b.negative_ttl &&
           a.stale_if_error == b.stale_if_error;
}

}  // namespace

std::shared_ptr<const runtime> build_runtime(const std::vector<net::any_io_executor>& loops,
                                             std::shared_ptr<const config::config> cfg,
                                             const runtime* previous, metrics& m,
                                             std::vector<std::string>& errors) {
    auto log = get_logger("config");

    std::vector<std::shared_ptr<upstream_pool>> pools;
    if (cfg->mode == config::proxy_mode::proxy) {
        if (previous != nullptr && previous->upstreams.size() == loops.size() &&
            previous->upstreams.front()->serves(cfg->upstream)) {
            pools = previous->upstreams;
        } else {
            for (const auto& exec : loops) {
                std::string error;
                auto pool = upstream_pool::create(exec, cfg->upstream, error);
                if (!pool) {
                    errors.push_back(error);
                    return nullptr;
                }
                pools.push_back(std::move(pool));
            }
        }
    }

    // A verification result is only as good as the credentials and the Clerk instance that
    // produced it: a key or API change invalidates the cache, nothing else does.
    std::shared_ptr<core::verification_cache> cache;
    if (previous != nullptr && same_clerk_identity(*previous->cfg, *cfg) &&
        same_cache_settings(previous->cfg->cache, cfg->cache)) {
        cache = previous->cache;
    } else {
        if (previous != nullptr) {
            log->info("verification cache reset (clerk keys, api_url or cache settings changed)");
        }
        core::cache_options opts;
        opts.max_entries = cfg->cache.max_entries;
        opts.ttl = cfg->cache.ttl;
        opts.negative_ttl = cfg->cache.negative_ttl;
        opts.stale_if_error = cfg->cache.stale_if_error;
        cache = std::make_shared<core::verification_cache>(opts, core::system_clock::instance());
    }

    // The shared cache (Redis) lives on the control plane's loop, where verifications run.
    std::string shared_error;
    auto shared = shared_cache::create(loops.front(), *cfg, m, shared_error);
    if (!shared_error.empty()) {
        errors.push_back(shared_error);
        return nullptr;
    }
    auto auth = make_authenticator(loops.front(), cfg, cache, m, std::move(shared));
    auto rt =
        std::make_shared<runtime>(runtime{cfg, core::header_rules(cfg->headers), std::move(auth),
                                          std::move(cache), std::move(pools)});
    return rt;
}

}  // namespace clerk::proxy
