// The request-facing sections of the schema: auth, headers and routes (see loader.hpp).
#include "config/loader.hpp"

#include "config/values.hpp"
#include "core/ascii.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace clerk::config {

namespace {

using core::to_lower;
using core::to_upper;

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

void loader::routes(const YAML::Node& n, const std::string& key, std::vector<core::route>& out) {
    if (n.IsNull()) {
        return;
    }
    if (!n.IsSequence()) {
        r_.error(n, key, "expected a list of route rules, got " + std::string(node_kind(n)));
        return;
    }
    std::size_t index = 0;
    for (const YAML::Node& item : n) {
        route(item, key + "[" + std::to_string(index) + "]", out);
        ++index;
    }
}

void loader::route(const YAML::Node& n, const std::string& key, std::vector<core::route>& out) {
    const int line = r_.line_of(n);
    if (!n.IsMap()) {
        r_.error(line, key, "expected a mapping with path, methods, auth, ...");
        return;
    }
    std::optional<std::string> path;
    std::vector<std::string> methods;
    core::auth_mode mode = core::auth_mode::required;
    std::vector<std::string> scopes;
    std::vector<std::string> subjects;
    bool has_scopes = false;
    bool has_subjects = false;

    // Non-empty strings without whitespace (scopes and subject ids never contain any).
    const auto word_list = [this](std::vector<std::string>& target, bool& present,
                                  std::string_view what) {
        return [this, &target, &present, what](const YAML::Node& v, const std::string& k) {
            auto items = r_.string_list(v, k);
            if (!items) {
                return;
            }
            for (const list_item& item : *items) {
                if (item.value.empty() || has_control_char(item.value) ||
                    item.value.find(' ') != std::string::npos) {
                    r_.error(item.line, k,
                             "\"" + item.value + "\" is not a valid " + std::string(what));
                    return;
                }
                target.push_back(item.value);
            }
            present = !target.empty();
        };
    };
    const field fields[] = {
        {"path",
         [&](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text) {
                 return;
             }
             if (auto problem = route_path_problem(*text); !problem.empty()) {
                 r_.error(v, k, "\"" + *text + "\": " + problem);
                 return;
             }
             path = std::move(*text);
         }},
        {"methods",
         [&](const YAML::Node& v, const std::string& k) {
             auto items = r_.string_list(v, k);
             if (!items) {
                 return;
             }
             if (items->empty()) {
                 r_.error(v, k, "must list at least one method (omit it to match all methods)");
                 return;
             }
             for (const list_item& item : *items) {
                 if (!is_http_token(item.value)) {
                     r_.error(item.line, k, "\"" + item.value + "\" is not a valid HTTP method");
                     continue;
                 }
                 std::string m = to_upper(item.value);
                 if (std::find(methods.begin(), methods.end(), m) == methods.end()) {
                     methods.push_back(std::move(m));
                 }
             }
         }},
        {"auth",
         [&](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text) {
                 return;
             }
             if (*text == "none") {
                 mode = core::auth_mode::none;
             } else if (*text == "required") {
                 mode = core::auth_mode::required;
             } else {
                 r_.error(v, k, "expected none or required, got \"" + *text + "\"");
             }
         }},
        {"require_scopes", word_list(scopes, has_scopes, "scope")},
        {"allow_subjects", word_list(subjects, has_subjects, "subject")},
    };
    r_.visit(n, key, fields);

    const std::string path_key = key + ".path";
    if (!path) {
        if (!r_.failed(path_key)) {
            r_.error(line, path_key, "required");
        }
        return;
    }
    if (mode == core::auth_mode::none && (has_scopes || has_subjects)) {
        // A policy on an unauthenticated route can never be enforced: refuse the contradiction
        // instead of silently dropping the policy.
        const std::string policy_key = key + (has_scopes ? ".require_scopes" : ".allow_subjects");
        r_.error(r_.line_for(policy_key, line), policy_key,
                 "not allowed with auth: none (there is no token to check)");
        return;
    }
    core::route r = core::make_route(std::move(*path));
    r.methods = std::move(methods);
    r.auth = mode;
    r.require_scopes = std::move(scopes);
    r.allow_subjects = std::move(subjects);
    r.line = line;
    out.push_back(std::move(r));
}

}  // namespace clerk::config
