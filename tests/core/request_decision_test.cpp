#include "core/request_decision.hpp"
#include "fakes/principal_edit.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using clerk::testing::edit;

using clerk::core::auth_mode;
using clerk::core::classify_and_accept;
using clerk::core::decision_kind;
using clerk::core::identity;
using clerk::core::make_route;
using clerk::core::path_parameters_ambiguous;
using clerk::core::post_authenticate;
using clerk::core::pre_authenticate;
using clerk::core::route;
using clerk::core::token_acceptance;
using clerk::core::token_format;
using clerk::core::token_type;

namespace {

// {"alg":"RS256","typ":"JWT","kid":"ins_1"} . {"jti":"mt_1","sub":"mch_2abc",...} . sig
constexpr std::string_view m2m_jwt =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Imluc18xIn0."
    "eyJqdGkiOiJtdF8xIiwic3ViIjoibWNoXzJhYmMiLCJleHAiOjE3NTM3NDY5MTZ9.c2ln";
// {"alg":"RS256","typ":"JWT","kid":"ins_1"} . {"sub":"user_1","sid":"sess_1"} . sig
constexpr std::string_view session_jwt =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Imluc18xIn0."
    "eyJzdWIiOiJ1c2VyXzEiLCJzaWQiOiJzZXNzXzEifQ.c2ln";

std::vector<route> sample_routes() {
    std::vector<route> routes;
    routes.push_back(make_route("/healthz"));
    routes.back().methods = {"GET"};
    routes.back().auth = auth_mode::none;
    routes.push_back(make_route("/admin/*"));
    routes.back().require_scopes = {"mch_admin"};
    routes.back().allow_subjects = {"mch_ops"};
    routes.push_back(make_route("/api/*"));
    return routes;
}

token_acceptance accept_only(std::vector<token_type> types) {
    token_acceptance a;
    a.types = std::move(types);
    return a;
}

token_acceptance accept_any() {
    token_acceptance a;
    a.any = true;
    return a;
}

/// A request that pre_authenticate settles without verification (allow or a refusal).
struct settled_case {
    std::string_view name;
    token_acceptance accepts;
    std::string_view path;
    std::vector<std::string_view> authorization;
    decision_kind kind;
    std::string_view reason;
    int route_index;  // -1: no rule
};

constexpr auto allow = decision_kind::allow;
constexpr auto missing = decision_kind::missing_token;
constexpr auto bad_req = decision_kind::invalid_request;
constexpr auto bad_tok = decision_kind::invalid_token;
constexpr std::string_view not_acc = "token_type_not_accepted";
constexpr std::string_view malformed = "malformed";

// clang-format off
const settled_case settled_cases[] = {
    {"auth none allows without token", {}, "/healthz", {},                 allow, "", 0},
    {"auth none ignores bad headers",  {}, "/healthz", {"Bearer", "x"},    allow, "", 0},
    {"missing token",                  {}, "/api/x",   {},                 missing, "", 2},
    {"other scheme is missing",        {}, "/api/x",   {"Basic xyz"},      missing, "", 2},
    {"no rule, missing token",         {}, "/other",   {},                 missing, "", -1},
    {"two headers",                    {}, "/api/x",   {"Bearer a", "Bearer b"}, bad_req, "", 2},
    {"empty token",                    {}, "/api/x",   {"Bearer "},        bad_req, "", 2},
    {"bearer alone",                   {}, "/api/x",   {"Bearer"},         bad_req, "", 2},
    {"malformed token",                {}, "/api/x",   {"Bearer garbage"}, bad_tok, malformed, 2},
    {"api key refused by default",     {}, "/api/x",   {"Bearer ak_abc"},  bad_tok, not_acc, 2},
    {"oauth refused by default",       {}, "/api/x",   {"Bearer oat_abc"}, bad_tok, not_acc, 2},
    {"listed type refuses others",     accept_only({token_type::api_key}),
                                           "/api/x",   {"Bearer mt_abc"},  bad_tok, not_acc, 2},
    {"any still refuses malformed",    accept_any(),
                                           "/api/x",   {"Bearer x"},       bad_tok, malformed, 2},
};
// clang-format on

/// A request that pre_authenticate hands over for verification.
struct verify_case {
    std::string_view name;
    token_acceptance accepts;
    std::string_view path;
    std::string_view authorization;
    int route_index;  // -1: no rule
    token_type type;
    token_format format;
};

constexpr auto m2m = token_type::m2m_token;
constexpr auto api_key = token_type::api_key;
constexpr auto oauth = token_type::oauth_token;
constexpr auto opaque = token_format::opaque;

// clang-format off
const verify_case verify_cases[] = {
    {"opaque m2m accepted",      {},           "/api/x", "Bearer mt_abc",  2,  m2m, opaque},
    {"no rule still needs auth", {},           "/other", "Bearer mt_abc",  -1, m2m, opaque},
    {"policy route",             {},           "/admin", "bearer  mt_abc", 1,  m2m, opaque},
    {"listed type accepted",     accept_only({m2m, api_key}),
                                               "/api/x", "Bearer ak_abc",  2,  api_key, opaque},
    {"any accepts oauth",        accept_any(), "/api/x", "Bearer oat_abc", 2,  oauth, opaque},
    {"any accepts api key",      accept_any(), "/api/x", "Bearer ak_abc",  2,  api_key, opaque},
};
// clang-format on

}  // namespace

TEST_CASE("token_acceptance", "[decision]") {
    const token_acceptance def;
    CHECK(def.accepts(token_type::m2m_token));
    CHECK_FALSE(def.accepts(token_type::api_key));
    CHECK_FALSE(def.accepts(token_type::oauth_token));
    CHECK_FALSE(def.accepts(token_type::session_token));

    const token_acceptance any = accept_any();
    for (const auto t : {token_type::m2m_token, token_type::api_key, token_type::oauth_token,
                         token_type::session_token}) {
        CHECK(any.accepts(t));
    }

    const token_acceptance none = accept_only({});
    CHECK_FALSE(none.accepts(token_type::m2m_token));
}

TEST_CASE("pre_authenticate settles without verification", "[decision]") {
    const std::vector<route> routes = sample_routes();
    for (const auto& c : settled_cases) {
        SECTION(std::string(c.name)) {
            const auto r = pre_authenticate(routes, c.accepts, "GET", c.path, c.authorization);
            if (c.route_index < 0) {
                CHECK(r.matched == nullptr);
            } else {
                CHECK(r.matched == &routes[static_cast<std::size_t>(c.route_index)]);
            }
            CHECK_FALSE(r.needs_verification);
            CHECK(r.decision.kind == c.kind);
            CHECK(r.decision.reason == c.reason);
            CHECK(r.token.empty());
        }
    }
}

TEST_CASE("pre_authenticate: methods filter of an auth-none rule", "[decision]") {
    // "/healthz" is auth: none for GET only; a POST falls through to "no rule": auth required.
    const std::vector<route> routes = sample_routes();
    const auto r = pre_authenticate(routes, token_acceptance{}, "POST", "/healthz", {});
    CHECK(r.matched == nullptr);
    CHECK_FALSE(r.needs_verification);
    CHECK(r.decision.kind == decision_kind::missing_token);
}

TEST_CASE("pre_authenticate hands accepted tokens to verification", "[decision]") {
    const std::vector<route> routes = sample_routes();
    for (const auto& c : verify_cases) {
        SECTION(std::string(c.name)) {
            const std::string_view values[] = {c.authorization};
            const auto r = pre_authenticate(routes, c.accepts, "GET", c.path, values);
            if (c.route_index < 0) {
                CHECK(r.matched == nullptr);
            } else {
                CHECK(r.matched == &routes[static_cast<std::size_t>(c.route_index)]);
            }
            REQUIRE(r.needs_verification);
            CHECK_FALSE(r.decision.allowed());  // fail closed until verified
            CHECK(c.authorization.ends_with(r.token));
            CHECK(r.cls.type == c.type);
            CHECK(r.cls.format == c.format);
        }
    }
}

TEST_CASE("pre_authenticate classifies JWTs and views the header", "[decision]") {
    const std::vector<route> routes = sample_routes();
    const std::string header = "Bearer " + std::string(m2m_jwt);
    const std::string_view values[] = {header};

    const auto r = pre_authenticate(routes, token_acceptance{}, "GET", "/api/x", values);
    REQUIRE(r.needs_verification);
    CHECK(r.cls.type == token_type::m2m_token);
    CHECK(r.cls.format == token_format::jwt);
    CHECK(r.token == m2m_jwt);
    CHECK(r.token.data() == header.data() + 7);  // no copy of the token

    const std::string session = "Bearer " + std::string(session_jwt);
    const std::string_view session_values[] = {session};
    const auto s = pre_authenticate(routes, accept_any(), "GET", "/api/x", session_values);
    REQUIRE(s.needs_verification);
    CHECK(s.cls.type == token_type::session_token);

    const auto refused =
        pre_authenticate(routes, token_acceptance{}, "GET", "/api/x", session_values);
    CHECK_FALSE(refused.needs_verification);
    CHECK(refused.decision.kind == decision_kind::invalid_token);
    CHECK(refused.decision.reason == "token_type_not_accepted");
}

TEST_CASE("pre_authenticate without classification leaves steps 3-4 to classify_and_accept",
          "[decision]") {
    const std::vector<route> routes = sample_routes();
    // Whatever the token, a bearer credential on a protected route goes to verification, and
    // the decision is a refusal until then (fail closed).
    for (const std::string_view token : {std::string_view("mt_abc"), m2m_jwt, session_jwt,
                                         std::string_view("zz_not-a-known-token")}) {
        const std::string header = "Bearer " + std::string(token);
        const std::string_view values[] = {header};
        const auto r = pre_authenticate(routes, token_acceptance{}, "GET", "/api/x", values, false);
        REQUIRE(r.needs_verification);
        CHECK_FALSE(r.decision.allowed());
        CHECK(r.token == token);
    }
    // Steps 1-2 still settle what they settle.
    CHECK_FALSE(pre_authenticate(routes, token_acceptance{}, "GET", "/api/x", {}, false)
                    .needs_verification);

    const auto ok = classify_and_accept(m2m_jwt, token_acceptance{});
    CHECK(ok.ok);
    CHECK(ok.cls.type == token_type::m2m_token);
    CHECK(ok.cls.format == token_format::jwt);
    const auto not_accepted = classify_and_accept(session_jwt, token_acceptance{});
    CHECK_FALSE(not_accepted.ok);
    CHECK(not_accepted.classified);
    CHECK(not_accepted.cls.type == token_type::session_token);
    CHECK(not_accepted.refusal.reason == "token_type_not_accepted");
    const auto unknown_shape = classify_and_accept("zz_not-a-known-token", accept_any());
    CHECK_FALSE(unknown_shape.ok);
    CHECK_FALSE(unknown_shape.classified);
    CHECK(unknown_shape.refusal.kind == decision_kind::invalid_token);
    CHECK(unknown_shape.refusal.reason == "malformed");
}

TEST_CASE("post_authenticate applies the route policy", "[decision]") {
    const std::vector<route> routes = sample_routes();
    const route* admin = &routes[1];
    const route* api = &routes[2];

    struct post_case {
        std::string_view name;
        const route* matched;
        std::string subject;
        std::vector<std::string> scopes;
        decision_kind kind;
        std::string_view reason;
    };
    const post_case cases[] = {
        {"no rule", nullptr, "mch_x", {}, decision_kind::allow, ""},
        {"rule without policy", api, "mch_x", {}, decision_kind::allow, ""},
        {"policy satisfied", admin, "mch_ops", {"mch_admin"}, decision_kind::allow, ""},
        {"scope missing",
         admin,
         "mch_ops",
         {"mch_read"},
         decision_kind::insufficient_scope,
         "missing_scope"},
        {"subject not allowed",
         admin,
         "mch_x",
         {"mch_admin"},
         decision_kind::insufficient_scope,
         "subject_not_allowed"},
    };
    for (const auto& c : cases) {
        SECTION(std::string(c.name)) {
            identity id;
            edit(id).subject = c.subject;
            edit(id).scopes = c.scopes;
            const auto d = post_authenticate(c.matched, id);
            CHECK(d.kind == c.kind);
            CHECK(d.reason == c.reason);
        }
    }
}

TEST_CASE("path_parameters_ambiguous: ';' must not change which rule applies", "[decision]") {
    std::vector<route> routes;
    routes.push_back(make_route("/public/*"));
    routes.back().auth = auth_mode::none;
    routes.push_back(make_route("/admin/*"));
    routes.back().require_scopes = {"mch_admin"};
    struct row {
        std::string_view path;  // already normalized
        bool ambiguous;
    };
    // clang-format off
    const row rows[] = {
        {"/public/x",             false},  // no ';' at all
        {"/public/x;v=1",         false},  // /public/* either way
        {"/public/.;/x",          false},  // "/public/./x" is still /public/*
        {"/api/x;v=1",            false},  // no rule either way
        {"/admin/x;jsessionid=1", false},  // /admin/* either way
        {"/a;b=c,d@e:f",          false},
        {"/public/..;/admin/x",   true},   // Tomcat: "/admin/x"
        {"/public/..;x=1/admin",  true},
        {"/admin;x=1/x",          true},   // Tomcat: "/admin/x"
        {"/admin;x=1",            true},
        {"/public;x=1/y",         true},   // Tomcat: "/public/y", auth: none
        {"/..;/x",                true},   // escapes the root once parameters are dropped
        {"/public/%3B/admin",     false},  // an escaped ';' is no parameter
    };
    // clang-format on
    for (const auto& r : rows) {
        INFO(r.path);
        CHECK(path_parameters_ambiguous(routes, "GET", r.path) == r.ambiguous);
    }
}
