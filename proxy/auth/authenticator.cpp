#include "proxy/auth/authenticator.hpp"

namespace clerk::proxy {

auth_result refused_by_classification(const core::classification_result& c) {
    auth_result r{c.refusal, nullptr, std::nullopt, std::nullopt};
    if (c.classified) {
        r.type = c.cls.type;
    }
    return r;
}

task<auth_result> authenticator::authenticate_bearer(
    std::string_view token, const core::token_acceptance& accepts,
    std::chrono::steady_clock::time_point deadline) {
    const auto c = core::classify_and_accept(token, accepts);
    if (!c.ok) {
        co_return refused_by_classification(c);
    }
    auth_result r = co_await authenticate(token, c.cls, deadline);
    r.type = r.id ? r.id->type : c.cls.type;
    co_return r;
}

}  // namespace clerk::proxy
