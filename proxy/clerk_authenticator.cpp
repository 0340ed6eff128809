// TEMPORARY stub, replaced by the Clerk verification work (issue 4): fails closed.
#include "proxy/auth_factory.hpp"

namespace clerk::proxy {
namespace {

class unavailable_authenticator final : public authenticator {
public:
    net::awaitable<auth_result> authenticate(std::string_view, core::token_class,
                                             std::chrono::steady_clock::time_point) override {
        co_return auth_result{{core::decision_kind::auth_unavailable, "not_implemented"}, {}, {}};
    }
};

}  // namespace

std::shared_ptr<authenticator> make_authenticator(net::any_io_executor,
                                                  std::shared_ptr<const config::config>,
                                                  std::shared_ptr<core::verification_cache>,
                                                  metrics&) {
    return std::make_shared<unavailable_authenticator>();
}

}  // namespace clerk::proxy
