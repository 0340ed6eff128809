// libFuzzer target: identity-header stripping and injection (docs/reference.md §3 "headers", §5
// "Identity headers" and "Hop-by-hop headers").
//
// Input lines: subject, token id, scopes (space-separated, so a scope may hold a comma), claims
// JSON, then "name: value" request headers (a "Connection" header feeds connection_tokens).
// Invariants: a configured identity header or strip_prefixes match is always removed; hop-by-hop
// headers are always removed and Host/Content-Length never are; injected values never hold CR,
// LF or NUL; compact_ascii_json is ASCII without control characters.
#include "core/header_rules.hpp"
#include "core/identity.hpp"
#include "fakes/principal_edit.hpp"
#include "fuzz/fuzz_util.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using clerk::testing::edit;

namespace {

using clerk::fuzz::check;
namespace core = clerk::core;

const core::header_rules& rules() {
    static const core::header_rules r = [] {
        core::identity_header_names n;  // the docs/reference.md §3 defaults
        n.strip_prefixes = {"X-Clerk-", "X-Internal-"};
        n.claims_to_headers = {{"tenant", "X-Tenant-Id"}, {"org", "X-Org"}, {"", "X-Empty-Claim"}};
        return core::header_rules(std::move(n));
    }();
    return r;
}

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

bool istarts_with(std::string_view s, std::string_view p) {
    return s.size() >= p.size() && iequals(s.substr(0, p.size()), p);
}

// Reference list, written out here rather than read back from the rules object. Identity names
// compare with '_' equal to '-' (CGI-style upstreams read X_Clerk_Subject as X-Clerk-Subject).
bool reference_identity(std::string_view raw) {
    std::string dashed(raw);
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    const std::string_view name = dashed;
    for (const std::string_view n :
         {"X-Clerk-Subject", "X-Clerk-Machine-Id", "X-Clerk-Token-Id", "X-Clerk-Token-Type",
          "X-Clerk-Scopes", "X-Clerk-Claims", "X-Tenant-Id", "X-Org", "X-Empty-Claim"}) {
        if (iequals(name, n)) {
            return true;
        }
    }
    return istarts_with(name, "x-clerk-") || istarts_with(name, "x-internal-");
}

bool reference_hop_by_hop(std::string_view name) {
    for (const std::string_view n : {"connection", "keep-alive", "proxy-connection", "te",
                                     "trailer", "transfer-encoding", "upgrade"}) {
        if (iequals(name, n)) {
            return true;
        }
    }
    return false;
}

void check_header_safe(std::string_view v, const char* what) {
    for (const char c : v) {
        check(c != '\r' && c != '\n' && c != '\0', what);
    }
}

void check_ascii_json(const std::string& s, bool must_parse = true) {
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        check(u >= 0x20 && u < 0x7f, "compact_ascii_json is printable ASCII");
    }
    if (must_parse && !s.empty()) {
        const auto back = nlohmann::json::parse(s, nullptr, false);
        check(!back.is_discarded(), "compact_ascii_json output parses as JSON");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in = clerk::fuzz::as_view(data, size);
    const std::vector<std::string_view> parts = clerk::fuzz::split_lines(in, 5);
    auto part = [&parts](std::size_t i) {
        return i < parts.size() ? parts[i] : std::string_view{};
    };

    // 1. The identity, with fuzzed fields (the verifier bounds these; header_rules must not rely
    //    on it).
    core::identity id;
    edit(id).subject = std::string(part(0));
    id.token_id = std::string(part(1));
    std::string_view scopes = part(2);
    while (!scopes.empty()) {
        const auto sp = scopes.find(' ');
        edit(id).scopes.emplace_back(scopes.substr(0, sp));
        scopes = sp == std::string_view::npos ? std::string_view{} : scopes.substr(sp + 1);
    }
    id.type = static_cast<core::token_type>(size % 4);
    edit(id).claims = nlohmann::json::parse(part(3), nullptr, /*allow_exceptions=*/false);
    if (id.who->claims.is_discarded()) {
        edit(id).claims = nullptr;
    }
    // Sometimes a precomputed rendering, sometimes a bogus one: both must come out header-safe.
    if (size % 3 == 0) {
        edit(id).claims_compact = core::compact_ascii_json(id.who->claims);
        check_ascii_json(id.who->claims_compact);
    } else if (size % 3 == 1) {
        edit(id).claims_compact = std::string(part(0));
    }
    check_ascii_json(core::compact_ascii_json(id.who->claims));

    for (const auto& [name, value] : rules().identity_headers(id)) {
        check(reference_identity(name), "an injected header is an identity header");
        check(rules().must_remove(name, {}), "an injected header name is always removed first");
        check(!value.empty(), "no empty identity header value");
        check_header_safe(value, "identity header values hold no CR, LF or NUL");
        if (name == "X-Clerk-Claims") {
            // A caller-supplied claims_compact is trusted when it is printable ASCII (its
            // contract: rendered by compact_ascii_json), so only a rendered one must parse.
            check_ascii_json(value, /*must_parse=*/size % 3 != 1);
        }
    }

    // 2. Request headers: "name: value" lines; Connection values name more hop-by-hop headers.
    std::vector<std::pair<std::string_view, std::string_view>> headers;
    std::vector<std::string_view> connection_values;
    std::string_view rest = part(4);
    while (!rest.empty()) {
        const auto nl = rest.find('\n');
        const std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
        const auto colon = line.find(':');
        const std::string_view name = line.substr(0, colon);
        const std::string_view value =
            colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
        headers.emplace_back(name, value);
        if (iequals(name, "connection")) {
            connection_values.push_back(value);
        }
    }
    const std::vector<std::string> conn = core::connection_tokens(connection_values);
    for (const auto& t : conn) {
        check(!t.empty(), "connection tokens are not empty");
        for (const char c : t) {
            check(c != ',' && lower(c) == c, "connection tokens are lower-case, comma-free");
        }
    }
    for (const auto& [name, value] : headers) {
        const bool removed = rules().must_remove(name, conn);
        check(rules().is_identity_header(name) == reference_identity(name),
              "is_identity_header agrees with the reference list");
        if (reference_identity(name)) {
            check(removed, "an identity header name is always removed");
        }
        check(core::is_hop_by_hop(name) == reference_hop_by_hop(name), "hop-by-hop set");
        if (reference_hop_by_hop(name)) {
            check(removed, "a hop-by-hop header is always removed");
        }
        if (iequals(name, "host") || iequals(name, "content-length")) {
            check(!removed, "Host and Content-Length are never removed");
        }
        if (!reference_identity(name) && !reference_hop_by_hop(name)) {
            bool named = false;
            for (const auto& t : conn) {
                named = named || iequals(name, t);
            }
            check(removed == (named && !iequals(name, "host") && !iequals(name, "content-length")),
                  "other headers are removed iff Connection names them");
        }
    }
    return 0;
}
