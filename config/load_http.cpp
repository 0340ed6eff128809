// The request-facing sections of the schema: auth and headers (routes: load_routes.cpp; see
// loader.hpp).
#include "config/loader.hpp"

#include "config/values.hpp"
#include "core/ascii.hpp"

#include <algorithm>
#include <array>

namespace clerk::config {

namespace {

using core::to_lower;

/// Header names that may not be used as identity headers: stripping them from every request
/// (docs/reference.md §5) would break framing, routing or authentication.
bool is_reserved_header(std::string_view name) {
    static constexpr std::array<std::string_view, 11> reserved = {"host",
                                                                  "content-length",
                                                                  "transfer-encoding",
                                                                  "connection",
                                                                  "authorization",
                                                                  "upgrade",
                                                                  "te",
                                                                  "trailer",
                                                                  "keep-alive",
                                                                  "proxy-connection",
                                                                  "x-request-id"};
    const std::string l = to_lower(name);
    return std::find(reserved.begin(), reserved.end(), l) != reserved.end();
}

}  // namespace

loader::apply_fn loader::unique_nonempty_list(std::vector<std::string>& out,
                                              const char* empty_problem) {
    return [this, &out, empty_problem](const YAML::Node& v, const std::string& k) {
        auto items = r_.string_list(v, k);
        if (!items) {
            return;
        }
        std::vector<std::string> values;
        bool ok = true;
        for (const list_item& item : *items) {
            if (item.value.empty()) {
                r_.error(item.line, k, empty_problem);
                ok = false;
            } else if (std::find(values.begin(), values.end(), item.value) == values.end()) {
                values.push_back(item.value);
            }
        }
        if (ok) {
            out = std::move(values);
        }
    };
}

void loader::auth(const YAML::Node& n, const std::string& key, auth_config& out) {
    const field fields[] = {
        {"accepts_token",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto items = r_.string_list(v, k);
             if (!items) {
                 return;
             }
             if (items->empty()) {
                 r_.error(v, k, "must list at least one token type (or any)");
                 return;
             }
             core::token_acceptance acc;
             acc.types.clear();
             bool ok = true;
             for (const list_item& item : *items) {
                 if (item.value == "any") {
                     acc.any = true;
                 } else if (auto t = core::parse_token_type(item.value)) {
                     if (std::find(acc.types.begin(), acc.types.end(), *t) == acc.types.end()) {
                         acc.types.push_back(*t);
                     }
                 } else {
                     r_.error(item.line, k,
                              "unknown token type \"" + item.value +
                                  "\" (m2m_token, api_key, oauth_token, session_token or any)");
                     ok = false;
                 }
             }
             if (ok) {
                 if (acc.any) {
                     acc.types = {core::token_type::m2m_token, core::token_type::api_key,
                                  core::token_type::oauth_token, core::token_type::session_token};
                 }
                 out.accepts = std::move(acc);
             }
         }},
        {"forward_authorization", to_bool(out.forward_authorization)},
        {"clock_skew", to_duration(out.clock_skew, true)},
        // An empty entry is almost always an unset variable (${CLERK_MACHINE_ID:-}): refusing
        // it beats silently turning the recipient check off.
        {"audience", unique_nonempty_list(out.audience,
                                          "empty value (is the variable it names, "
                                          "e.g. CLERK_MACHINE_ID, set?)")},
        {"authorized_parties",
         unique_nonempty_list(out.authorized_parties,
                              "empty value (an origin such as https://app.example.com)")},
    };
    r_.visit(n, key, fields);
}

void loader::headers(const YAML::Node& n, const std::string& key,
                     core::identity_header_names& out) {
    const auto header_name = [this](std::string& target) {
        return [this, &target](const YAML::Node& v, const std::string& k) {
            auto text = r_.string(v, k);
            if (!text) {
                return;
            }
            if (!is_http_token(*text)) {
                r_.error(v, k, "\"" + *text + "\" is not a valid header name");
                return;
            }
            target = std::move(*text);
        };
    };
    const field fields[] = {
        {"subject", header_name(out.subject)},
        {"machine_id", header_name(out.machine_id)},
        {"token_id", header_name(out.token_id)},
        {"token_type", header_name(out.token_type)},
        {"scopes", header_name(out.scopes)},
        {"claims", header_name(out.claims)},
        {"user_id", header_name(out.user_id)},
        {"org_id", header_name(out.org_id)},
        {"strip_prefixes",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto items = r_.string_list(v, k);
             if (!items) {
                 return;
             }
             std::vector<std::string> prefixes;
             bool ok = true;
             for (const list_item& item : *items) {
                 if (item.value.empty()) {
                     // "" would match every header and strip the whole request.
                     r_.error(item.line, k, "an empty prefix would strip every header");
                     ok = false;
                 } else if (!is_http_token(item.value)) {
                     r_.error(item.line, k, "\"" + item.value + "\" is not a valid header prefix");
                     ok = false;
                 } else {
                     prefixes.push_back(item.value);
                 }
             }
             if (ok) {
                 out.strip_prefixes = std::move(prefixes);
             }
         }},
        {"claims_to_headers",
         [this, &out](const YAML::Node& v, const std::string& k) { claims_to_headers(v, k, out); }},
    };
    r_.visit(n, key, fields);
}

void loader::claims_to_headers(const YAML::Node& n, const std::string& key,
                               core::identity_header_names& out) {
    if (n.IsNull()) {
        return;
    }
    if (!n.IsMap()) {
        r_.error(
            n, key,
            "expected a mapping of claim name to header name, got " + std::string(node_kind(n)));
        return;
    }
    std::vector<std::pair<std::string, std::string>> pairs;
    for (auto it = n.begin(); it != n.end(); ++it) {
        // Copies, not references: the iterator's operator-> returns a temporary proxy.
        const YAML::Node claim = it->first;
        const YAML::Node value = it->second;
        if (!claim.IsScalar() || claim.Scalar().empty()) {
            r_.error(claim, key, "claim names must be non-empty strings");
            continue;
        }
        const std::string item_key = key + "." + claim.Scalar();
        const bool duplicate = std::any_of(
            pairs.begin(), pairs.end(), [&](const auto& p) { return p.first == claim.Scalar(); });
        if (duplicate) {
            r_.error(claim, item_key, "duplicate claim");
            continue;
        }
        auto header = r_.string(value, item_key);
        if (!header) {
            continue;
        }
        if (!is_http_token(*header)) {
            r_.error(value, item_key, "\"" + *header + "\" is not a valid header name");
            continue;
        }
        pairs.emplace_back(claim.Scalar(), std::move(*header));
    }
    out.claims_to_headers = std::move(pairs);
}

void loader::header_name_checks(const core::identity_header_names& names) {
    // Every injected header must be distinct and must not be a framing/auth header.
    std::vector<std::pair<std::string, std::string>> injected = {
        {"headers.subject", names.subject},   {"headers.machine_id", names.machine_id},
        {"headers.token_id", names.token_id}, {"headers.token_type", names.token_type},
        {"headers.scopes", names.scopes},     {"headers.claims", names.claims},
        {"headers.user_id", names.user_id},   {"headers.org_id", names.org_id},
    };
    for (const auto& [claim, header] : names.claims_to_headers) {
        injected.emplace_back("headers.claims_to_headers." + claim, header);
    }
    for (std::size_t i = 0; i < injected.size(); ++i) {
        const auto& [key, name] = injected[i];
        if (r_.failed(key)) {
            continue;
        }
        const int line = r_.line_for(key, r_.line_for("headers", root_line_));
        if (is_reserved_header(name)) {
            r_.error(line, key, "\"" + name + "\" is reserved and cannot be an identity header");
            continue;
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (to_lower(injected[j].second) == to_lower(name)) {
                r_.error(line, key, "\"" + name + "\" is already used by " + injected[j].first);
                break;
            }
        }
    }
    for (const std::string& prefix : names.strip_prefixes) {
        for (std::string_view reserved : {"host", "content-length", "authorization"}) {
            if (to_lower(reserved).starts_with(to_lower(prefix))) {
                r_.error(r_.line_for("headers.strip_prefixes", root_line_),
                         "headers.strip_prefixes",
                         "prefix \"" + prefix + "\" would strip the " + std::string(reserved) +
                             " header");
                break;
            }
        }
    }
}

}  // namespace clerk::config
