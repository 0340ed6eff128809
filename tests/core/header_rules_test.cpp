#include "core/header_rules.hpp"
#include "fakes/principal_edit.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using clerk::testing::edit;

namespace {

using clerk::core::connection_tokens;
using clerk::core::header_rules;
using clerk::core::identity;
using clerk::core::identity_header_names;
using clerk::core::is_hop_by_hop;
using headers = std::vector<std::pair<std::string, std::string>>;

std::vector<std::string> tokens_of(const std::vector<std::string_view>& values) {
    return connection_tokens(values);
}

std::optional<std::string> find_header(const headers& hs, std::string_view name) {
    for (const auto& [n, v] : hs) {
        if (n == name) {
            return v;
        }
    }
    return std::nullopt;
}

bool values_are_safe(const headers& hs) {
    return std::all_of(hs.begin(), hs.end(), [](const auto& h) {
        return h.second.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos;
    });
}

identity machine_identity() {
    identity id;
    edit(id).subject = "mch_2xyz";
    id.token_id = "mt_abc";
    edit(id).scopes = {"mch_admin", "mch_billing"};
    edit(id).claims = nlohmann::json{{"tenant", "acme"}, {"level", 3}};
    return id;
}

struct removal_case {
    std::string_view name;
    std::string_view header;
    std::vector<std::string_view> connection;
    bool removed;
};

const removal_case removal_cases[] = {
    {"client X-Clerk-Machine-Id", "X-Clerk-Machine-Id", {}, true},
    {"subject, lower case", "x-clerk-subject", {}, true},
    {"subject, upper case", "X-CLERK-SUBJECT", {}, true},
    {"subject, mixed case", "x-ClErK-sUbJeCt", {}, true},
    {"anything under the prefix", "X-CLERK-anything", {}, true},
    {"prefix itself", "x-clerk-", {}, true},
    {"claims_to_headers target", "X-Tenant-Id", {}, true},
    {"claims_to_headers target, lower case", "x-tenant-id", {}, true},
    {"subject with underscores (CGI reads it as the name)", "X_Clerk_Subject", {}, true},
    {"mixed underscore and dash", "x-clerk_machine_id", {}, true},
    {"prefix with underscores", "X_CLERK_anything", {}, true},
    {"claims_to_headers target with underscores", "x_tenant_id", {}, true},
    {"underscore near miss is kept", "X_Clerk", {}, false},
    {"near miss is kept", "X-Clerk", {}, false},
    {"ordinary header kept", "Accept", {}, false},
    {"Connection named identity header", "X-Clerk-Subject", {"X-Clerk-Subject"}, true},
    {"Connection: close, X-Foo removes X-Foo", "X-Foo", {"close, X-Foo"}, true},
    {"Connection token case-insensitive", "x-foo", {"keep-alive,  X-FOO "}, true},
    {"second Connection header counts", "X-Bar", {"close", "X-Bar"}, true},
    {"Connection cannot remove Host", "Host", {"Host"}, false},
    {"Connection cannot remove host (lower)", "host", {"close, HOST"}, false},
    {"Connection cannot remove Content-Length", "Content-Length", {"Content-Length"}, false},
    {"unnamed header kept despite Connection", "X-Other", {"close, X-Foo"}, false},
    {"hop-by-hop Connection", "Connection", {}, true},
    {"hop-by-hop Keep-Alive", "keep-alive", {}, true},
    {"hop-by-hop Proxy-Connection", "Proxy-Connection", {}, true},
    {"hop-by-hop TE", "te", {}, true},
    {"hop-by-hop Trailer", "Trailer", {}, true},
    {"hop-by-hop Transfer-Encoding", "TRANSFER-ENCODING", {}, true},
    {"hop-by-hop Upgrade", "Upgrade", {}, true},
    {"Authorization is not hop-by-hop", "Authorization", {}, false},
};

}  // namespace

TEST_CASE("connection_tokens splits, trims and lower-cases", "[header_rules]") {
    CHECK(tokens_of({"close, X-Foo"}) == std::vector<std::string>{"close", "x-foo"});
    CHECK(tokens_of({" Keep-Alive ,,\tUpgrade\t", "TE"}) ==
          std::vector<std::string>{"keep-alive", "upgrade", "te"});
    CHECK(tokens_of({"", " , ", ","}).empty());
    CHECK(tokens_of({}).empty());
}

TEST_CASE("is_hop_by_hop is case-insensitive and exact", "[header_rules]") {
    CHECK(is_hop_by_hop("Connection"));
    CHECK(is_hop_by_hop("KEEP-ALIVE"));
    CHECK(is_hop_by_hop("proxy-connection"));
    CHECK_FALSE(is_hop_by_hop("Connections"));
    CHECK_FALSE(is_hop_by_hop("T"));
    CHECK_FALSE(is_hop_by_hop(""));
}

TEST_CASE("must_remove strips client identity and hop-by-hop headers", "[header_rules]") {
    identity_header_names names;
    names.claims_to_headers = {{"tenant", "X-Tenant-Id"}};
    const header_rules rules(names);
    for (const auto& c : removal_cases) {
        SECTION(std::string(c.name)) {
            const auto conn = tokens_of(c.connection);
            CHECK(rules.must_remove(c.header, conn) == c.removed);
        }
    }
}

TEST_CASE("custom configured names and prefixes are stripped", "[header_rules]") {
    identity_header_names names;
    names.subject = "X-Auth-Sub";
    names.machine_id = "X-Auth-Machine";
    names.token_id = "X-Auth-Jti";
    names.token_type = "X-Auth-Type";
    names.scopes = "X-Auth-Scopes";
    names.claims = "X-Auth-Claims";
    names.strip_prefixes = {"X-Internal-", ""};  // the empty prefix must not strip everything
    const header_rules rules(names);
    CHECK(rules.is_identity_header("x-auth-sub"));
    CHECK(rules.is_identity_header("X-AUTH-MACHINE"));
    CHECK(rules.is_identity_header("x-auth-jti"));
    CHECK(rules.is_identity_header("X-Auth-Type"));
    CHECK(rules.is_identity_header("x-auth-scopes"));
    CHECK(rules.is_identity_header("x-auth-claims"));
    CHECK(rules.is_identity_header("x-internal-whatever"));
    // The defaults are no longer identity headers once renamed.
    CHECK_FALSE(rules.is_identity_header("X-Clerk-Subject"));
    CHECK_FALSE(rules.is_identity_header("Accept"));
}

TEST_CASE("identity_headers for a machine subject", "[header_rules]") {
    identity_header_names names;
    names.claims_to_headers = {{"tenant", "X-Tenant-Id"}, {"level", "X-Level"}};
    const header_rules rules(names);
    const auto hs = rules.identity_headers(machine_identity());
    CHECK(find_header(hs, "X-Clerk-Subject") == "mch_2xyz");
    CHECK(find_header(hs, "X-Clerk-Machine-Id") == "mch_2xyz");
    CHECK(find_header(hs, "X-Clerk-Token-Id") == "mt_abc");
    CHECK(find_header(hs, "X-Clerk-Token-Type") == "m2m_token");
    CHECK(find_header(hs, "X-Clerk-Scopes") == "mch_admin,mch_billing");
    CHECK(find_header(hs, "X-Clerk-Claims") == R"({"level":3,"tenant":"acme"})");
    CHECK(find_header(hs, "X-Tenant-Id") == "acme");  // string claim verbatim
    CHECK(find_header(hs, "X-Level") == "3");         // other JSON compact
    CHECK(values_are_safe(hs));
}

TEST_CASE("identity_headers for a non-machine subject", "[header_rules]") {
    const header_rules rules(identity_header_names{});
    identity id;
    id.type = clerk::core::token_type::oauth_token;
    edit(id).subject = "user_123";
    id.token_id = "oat_1";
    const auto hs = rules.identity_headers(id);
    CHECK(find_header(hs, "X-Clerk-Subject") == "user_123");
    CHECK_FALSE(find_header(hs, "X-Clerk-Machine-Id"));
    CHECK(find_header(hs, "X-Clerk-Token-Type") == "oauth_token");
    CHECK_FALSE(find_header(hs, "X-Clerk-Scopes"));  // no scopes: omitted
    CHECK_FALSE(find_header(hs, "X-Clerk-Claims"));  // null claims: omitted
}

TEST_CASE("claims header only for a non-empty object", "[header_rules]") {
    const header_rules rules(identity_header_names{});
    identity id = machine_identity();
    for (const auto* text : {"{}", "null", "[1,2]", "\"str\"", "42"}) {
        edit(id).claims = nlohmann::json::parse(text);
        CAPTURE(text);
        CHECK_FALSE(find_header(rules.identity_headers(id), "X-Clerk-Claims"));
    }
    edit(id).claims = nlohmann::json{{"k", "v"}};
    edit(id).claims_compact = R"({"k":"v"})";
    CHECK(find_header(rules.identity_headers(id), "X-Clerk-Claims") == R"({"k":"v"})");
    edit(id).claims_compact = "";  // not precomputed: rendered on the spot
    CHECK(find_header(rules.identity_headers(id), "X-Clerk-Claims") == R"({"k":"v"})");
}

TEST_CASE("identity_headers never emit CR, LF or NUL", "[header_rules]") {
    identity_header_names names;
    names.claims_to_headers = {{"evil", "X-Evil-Claim"}, {"nested", "X-Nested"}};
    const header_rules rules(names);
    identity id;
    edit(id).subject = "mch_1\r\nX-Evil: 1";
    id.token_id = std::string("mt_\0x", 5);
    edit(id).scopes = {"a\nb", "ok", "x,mch_admin", "\r\n"};
    edit(id).claims = {{"evil", "v\r\nX-Evil: 1"}, {"nested", {{"s", "line1\nline2"}}}};
    edit(id).claims_compact =
        "{\"evil\":\"v\r\nX-Evil: 1\"}";  // a tampered rendering is not trusted
    const auto hs = rules.identity_headers(id);
    CHECK(values_are_safe(hs));
    CHECK(find_header(hs, "X-Clerk-Subject") == "mch_1X-Evil: 1");
    CHECK(find_header(hs, "X-Clerk-Token-Id") == "mt_x");
    // A scope with a comma could pose as two scopes, so it is dropped.
    CHECK(find_header(hs, "X-Clerk-Scopes") == "ab,ok");
    CHECK_FALSE(find_header(hs, "X-Evil-Claim"));  // string claim with controls: skipped
    CHECK(find_header(hs, "X-Nested") == R"({"s":"line1\nline2"})");
    CHECK(find_header(hs, "X-Clerk-Claims") ==
          R"({"evil":"v\r\nX-Evil: 1","nested":{"s":"line1\nline2"}})");
}

TEST_CASE("claims_to_headers: absent claims add nothing, non-ASCII is escaped", "[header_rules]") {
    identity_header_names names;
    names.claims_to_headers = {
        {"missing", "X-Missing"}, {"nul", "X-Null"}, {"obj", "X-Obj"}, {"flag", "X-Flag"}};
    const header_rules rules(names);
    identity id = machine_identity();
    edit(id).claims = {{"nul", nullptr}, {"obj", {{"city", "Z\xc3\xbcrich"}}}, {"flag", true}};
    const auto hs = rules.identity_headers(id);
    CHECK_FALSE(find_header(hs, "X-Missing"));
    CHECK_FALSE(find_header(hs, "X-Null"));
    CHECK(find_header(hs, "X-Obj") == R"({"city":"Z\u00fcrich"})");
    CHECK(find_header(hs, "X-Flag") == "true");
    CHECK(find_header(hs, "X-Clerk-Claims") ==
          R"({"flag":true,"nul":null,"obj":{"city":"Z\u00fcrich"}})");
}
