#include "proxy/auth/auth_factory.hpp"

#include "proxy/auth/clerk_authenticator.hpp"
#include "proxy/auth/clerk_client.hpp"
#include "proxy/logging.hpp"

#include <utility>

namespace clerk::proxy {

std::shared_ptr<authenticator> make_authenticator(net::any_io_executor exec,
                                                  std::shared_ptr<const config::config> cfg,
                                                  std::shared_ptr<core::verification_cache> cache,
                                                  metrics& m,
                                                  std::shared_ptr<shared_cache> shared) {
    if (cfg->auth.accepts.accepts(core::token_type::m2m_token) && cfg->clerk.jwt_key.empty() &&
        cfg->clerk.secret_key.empty()) {
        get_logger("auth")->warn(
            "M2M tokens in JWT format will be refused (reason jwt_not_supported): JWT keys "
            "come from clerk.jwt_key or from the JWKS fetched with clerk.secret_key, and neither "
            "is set");
    }
    auto api = make_clerk_client(exec, cfg->clerk);
    return make_clerk_authenticator(std::move(exec), std::move(cfg), std::move(cache), m,
                                    std::move(api), core::system_clock::instance(),
                                    std::move(shared));
}

}  // namespace clerk::proxy
