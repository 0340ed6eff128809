#include "core/policy.hpp"
#include "fakes/principal_edit.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using clerk::testing::edit;

using clerk::core::identity;
using clerk::core::make_route;
using clerk::core::policy_allows;
using clerk::core::route;

namespace {

struct policy_case {
    std::string_view name;
    std::vector<std::string> require_scopes;
    std::vector<std::string> allow_subjects;
    std::string subject;
    std::vector<std::string> scopes;
    bool allowed;
};

const policy_case policy_cases[] = {
    {"no policy", {}, {}, "mch_a", {}, true},
    {"one scope present", {"mch_admin"}, {}, "mch_a", {"mch_admin"}, true},
    {"one scope absent", {"mch_admin"}, {}, "mch_a", {"mch_other"}, false},
    {"no scopes at all", {"mch_admin"}, {}, "mch_a", {}, false},
    {"all-of satisfied", {"a", "b"}, {}, "mch_a", {"b", "c", "a"}, true},
    {"all-of one missing", {"a", "b"}, {}, "mch_a", {"a", "c"}, false},
    {"scopes compared exactly", {"Admin"}, {}, "mch_a", {"admin"}, false},
    {"no substring scope match", {"mch_admin"}, {}, "mch_a", {"mch_admin2"}, false},
    {"subject allowed", {}, {"mch_ops", "mch_ci"}, "mch_ci", {}, true},
    {"subject not allowed", {}, {"mch_ops"}, "mch_other", {}, false},
    {"empty subject not allowed", {}, {"mch_ops"}, "", {}, false},
    {"scope and subject both ok", {"mch_admin"}, {"mch_ops"}, "mch_ops", {"mch_admin"}, true},
    {"scope ok subject not", {"mch_admin"}, {"mch_ops"}, "mch_x", {"mch_admin"}, false},
    {"subject ok scope not", {"mch_admin"}, {"mch_ops"}, "mch_ops", {}, false},
};

}  // namespace

TEST_CASE("policy_allows", "[policy]") {
    for (const auto& c : policy_cases) {
        SECTION(std::string(c.name)) {
            route r = make_route("/admin/*");
            r.require_scopes = c.require_scopes;
            r.allow_subjects = c.allow_subjects;
            identity id;
            edit(id).subject = c.subject;
            edit(id).scopes = c.scopes;
            CHECK(policy_allows(&r, id) == c.allowed);
        }
    }
}

TEST_CASE("policy_allows without a matched route", "[policy]") {
    const identity id;
    CHECK(policy_allows(nullptr, id));
}
