// libFuzzer target: the pure request decision (core/request_decision.hpp).
//
// Input lines: method, request target, identity subject, identity scopes (space-separated), then
// up to two Authorization header values. The size of the input picks the accepted token types.
// Invariants: without verification only an `auth: none` route is ever allowed; a request that
// needs verification is refused until it is verified (fail closed) and carries an accepted,
// extracted token; post_authenticate never allows a missing scope or a subject not listed.
#include "core/path_normalizer.hpp"
#include "core/request_decision.hpp"
#include "fakes/principal_edit.hpp"
#include "fuzz/fuzz_util.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

using clerk::testing::edit;

namespace {

using clerk::fuzz::check;
namespace core = clerk::core;

std::vector<core::route> make_table() {
    std::vector<core::route> t;
    core::route open = core::make_route("/public/*");
    open.methods = {"GET", "HEAD"};
    open.auth = core::auth_mode::none;
    t.push_back(std::move(open));
    core::route admin = core::make_route("/admin/*");
    admin.require_scopes = {"mch_admin", "mch_ops"};
    admin.allow_subjects = {"mch_root", "mch_ops"};
    t.push_back(std::move(admin));
    core::route api = core::make_route("/api/*");
    api.require_scopes = {"mch_api"};
    t.push_back(std::move(api));
    return t;
}

const std::vector<core::route>& table() {
    static const std::vector<core::route> t = make_table();
    return t;
}

core::token_acceptance acceptance(std::size_t selector) {
    core::token_acceptance a;
    a.any = (selector & 1) != 0;
    a.types.clear();
    constexpr core::token_type all[] = {core::token_type::m2m_token, core::token_type::api_key,
                                        core::token_type::oauth_token,
                                        core::token_type::session_token};
    for (std::size_t i = 0; i < 4; ++i) {
        if ((selector >> (i + 1)) & 1) {
            a.types.push_back(all[i]);
        }
    }
    return a;
}

bool has(const std::vector<std::string>& v, std::string_view s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

bool is_table_route(const core::route* r) {
    return r != nullptr && r >= table().data() && r < table().data() + table().size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in = clerk::fuzz::as_view(data, size);
    const std::vector<std::string_view> parts = clerk::fuzz::split_lines(in, 6);
    auto part = [&parts](std::size_t i) {
        return i < parts.size() ? parts[i] : std::string_view{};
    };

    const std::string_view method = part(0);
    const core::normalized_target target = core::normalize_target(part(1));
    if (target.status != core::path_status::ok) {
        return 0;  // refused with 400 before any auth decision
    }
    std::vector<std::string_view> authorization;
    for (std::size_t i = 4; i < parts.size(); ++i) {
        authorization.push_back(parts[i]);
    }
    const core::token_acceptance accepts = acceptance(size);

    // Before verification.
    const core::pre_auth pre =
        core::pre_authenticate(table(), accepts, method, target.path, authorization);
    check(pre.matched == nullptr || is_table_route(pre.matched), "matched route is in the table");
    check(pre.matched == core::match_route(table(), method, target.path),
          "route is the first match");
    if (pre.matched != nullptr && pre.matched->auth == core::auth_mode::none) {
        check(pre.decision.allowed() && !pre.needs_verification, "auth: none is allowed as is");
    }
    if (!pre.needs_verification && pre.decision.allowed()) {
        check(pre.matched != nullptr && pre.matched->auth == core::auth_mode::none,
              "no identity is needed only on an auth: none route");
    }
    if (pre.needs_verification) {
        check(!pre.decision.allowed(), "an unverified request is refused (fail closed)");
        check(authorization.size() == 1, "a token comes from exactly one Authorization header");
        check(clerk::fuzz::views_into(pre.token, authorization.front()), "token views its header");
        check(!pre.token.empty() && pre.token.size() <= core::max_token_bytes, "token is bounded");
        check(accepts.accepts(pre.cls.type), "only an accepted token type is verified");
        const core::classification c = core::classify_token(pre.token);
        check(c.status == core::classify_status::ok && c.cls.type == pre.cls.type &&
                  c.cls.format == pre.cls.format,
              "class matches classify_token");
    } else {
        check(pre.token.empty(), "no token unless it is to be verified");
    }

    // After a (pretend) verification with a fuzzed identity: the route policy.
    core::identity id;
    edit(id).subject = std::string(part(2));
    std::string_view scopes = part(3);
    while (!scopes.empty()) {
        const auto sp = scopes.find(' ');
        edit(id).scopes.emplace_back(scopes.substr(0, sp));
        scopes = sp == std::string_view::npos ? std::string_view{} : scopes.substr(sp + 1);
    }
    for (const core::route* r : {pre.matched, &table()[1], &table()[2]}) {
        const core::auth_decision post = core::post_authenticate(r, id);
        check(post.allowed() || post.kind == core::decision_kind::insufficient_scope,
              "post_authenticate allows or says insufficient_scope");
        if (r == nullptr) {
            check(post.allowed(), "no matching rule: no policy");
            continue;
        }
        bool scopes_ok = true;
        for (const auto& need : r->require_scopes) {
            scopes_ok = scopes_ok && has(id.who->scopes, need);
        }
        const bool subject_ok =
            r->allow_subjects.empty() || has(r->allow_subjects, id.who->subject);
        check(post.allowed() == (scopes_ok && subject_ok), "allowed iff scopes and subject pass");
        if (!post.allowed()) {
            check(post.reason == (scopes_ok ? "subject_not_allowed" : "missing_scope"),
                  "the refusal names the failing half");
        }
    }
    return 0;
}
