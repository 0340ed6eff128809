#include "core/header_rules.hpp"

#include "core/ascii.hpp"

#include <algorithm>
#include <array>

namespace clerk::core {
namespace {

// Identity names also compare '_' equal to '-': CGI-style upstreams (WSGI, Rack, PHP) and
// nginx with underscores_in_headers map both "X-Clerk-Subject" and "X_Clerk_Subject" to
// HTTP_X_CLERK_SUBJECT, so an underscore spelling must be stripped like the real name.
constexpr char identity_fold(char c) {
    return c == '_' ? '-' : ascii_lower(c);
}

bool identity_equals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return identity_fold(x) == identity_fold(y);
           });
}

bool identity_starts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && identity_equals(s.substr(0, prefix.size()), prefix);
}

bool is_ctl(char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
}

bool has_ctl(std::string_view s) {
    // No early exit: the loop vectorizes (identity values are short and almost always clean).
    unsigned bad = 0;
    for (const char c : s) {
        bad |= static_cast<unsigned>(is_ctl(c));
    }
    return bad != 0;
}

// Header values must never carry CR, LF or NUL (response splitting / request smuggling), so
// control characters are dropped rather than escaped; leading/trailing blanks are trimmed
// because HTTP parsers strip them anyway.
std::string header_safe(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (!is_ctl(c)) {
            out.push_back(c);
        }
    }
    const auto first = out.find_first_not_of(" \t");
    if (first == std::string::npos) {
        return {};
    }
    const auto last = out.find_last_not_of(" \t");
    return out.substr(first, last - first + 1);
}

constexpr std::array<std::string_view, 7> hop_by_hop_names{
    "connection", "keep-alive",        "proxy-connection", "te",
    "trailer",    "transfer-encoding", "upgrade"};

}  // namespace

void connection_tokens(std::span<const std::string_view> connection_values,
                       std::vector<std::string>& out) {
    std::size_t n = 0;
    for (std::string_view value : connection_values) {
        while (!value.empty()) {
            const auto comma = value.find(',');
            std::string_view item = value.substr(0, comma);
            value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
            const auto first = item.find_first_not_of(" \t");
            if (first == std::string_view::npos) {
                continue;
            }
            item = item.substr(first, item.find_last_not_of(" \t") - first + 1);
            if (n == out.size()) {
                out.emplace_back();
            }
            auto& token = out[n++];
            token.assign(item);  // reuses the string's capacity
            for (auto& c : token) {
                if (c >= 'A' && c <= 'Z') {
                    c = static_cast<char>(c - 'A' + 'a');
                }
            }
        }
    }
    out.resize(n);
}

std::vector<std::string> connection_tokens(std::span<const std::string_view> connection_values) {
    std::vector<std::string> tokens;
    connection_tokens(connection_values, tokens);
    return tokens;
}

bool is_hop_by_hop(std::string_view name) {
    return std::any_of(hop_by_hop_names.begin(), hop_by_hop_names.end(),
                       [name](std::string_view h) { return iequals(name, h); });
}

header_rules::header_rules(identity_header_names names) : names_(std::move(names)) {
    // An empty name or prefix would match nothing useful (or, for a prefix, everything), so it
    // is skipped here; config validation reports it.
    const auto add_exact = [this](const std::string& n) {
        if (!n.empty()) {
            exact_lower_.push_back(to_lower(n));
        }
    };
    add_exact(names_.subject);
    add_exact(names_.machine_id);
    add_exact(names_.token_id);
    add_exact(names_.token_type);
    add_exact(names_.scopes);
    add_exact(names_.claims);
    add_exact(names_.user_id);
    add_exact(names_.org_id);
    for (const auto& [claim, header] : names_.claims_to_headers) {
        add_exact(header);
    }
    for (const auto& p : names_.strip_prefixes) {
        if (!p.empty()) {
            prefix_lower_.push_back(to_lower(p));
        }
    }
}

bool header_rules::is_identity_header(std::string_view name) const {
    return std::any_of(exact_lower_.begin(), exact_lower_.end(),
                       [name](const std::string& n) { return identity_equals(name, n); }) ||
           std::any_of(prefix_lower_.begin(), prefix_lower_.end(),
                       [name](const std::string& p) { return identity_starts_with(name, p); });
}

bool header_rules::must_remove(std::string_view name,
                               std::span<const std::string> conn_tokens) const {
    if (is_identity_header(name) || is_hop_by_hop(name)) {
        return true;
    }
    // Connection may name extension hop-by-hop headers, but never the ones that frame and
    // route the request: dropping Content-Length would change how the upstream reads the body.
    if (iequals(name, "host") || iequals(name, "content-length")) {
        return false;
    }
    return std::any_of(conn_tokens.begin(), conn_tokens.end(),
                       [name](const std::string& t) { return iequals(name, t); });
}

std::vector<std::pair<std::string, std::string>> header_rules::identity_headers(
    const identity& id) const {
    std::vector<std::pair<std::string, std::string>> out;
    std::string scratch;
    for_each_identity_header(id, scratch, [&out](std::string_view name, std::string_view value) {
        out.emplace_back(name, value);
    });
    return out;
}

void header_rules::for_each_identity_header(
    const identity& id, std::string& scratch,
    const std::function<void(std::string_view, std::string_view)>& emit) const {
    const auto add = [&emit](std::string_view name, std::string_view value) {
        if (!name.empty() && !value.empty()) {
            emit(name, value);
        }
    };
    // A value that needs no cleaning (header_safe would return it unchanged) is passed as it
    // is; only the others are rebuilt.
    const auto needs_cleaning = [](std::string_view v) {
        return !v.empty() && (has_ctl(v) || v.front() == ' ' || v.front() == '\t' ||
                              v.back() == ' ' || v.back() == '\t');
    };
    const auto safe = [&scratch, &needs_cleaning](std::string_view v) -> std::string_view {
        if (!needs_cleaning(v)) {
            return v;
        }
        scratch = header_safe(v);
        return scratch;
    };
    const principal& who = *id.who;
    // `subject` may point into scratch: used before the next safe() call.
    const std::string_view subject = safe(who.subject);
    add(names_.subject, subject);
    if (who.is_machine()) {
        add(names_.machine_id, subject);
    }
    if (who.subject.starts_with("user_")) {
        add(names_.user_id, subject);
    }
    if (!who.org_id.empty()) {
        add(names_.org_id, safe(who.org_id));
    } else if (who.subject.starts_with("org_")) {
        add(names_.org_id, subject);
    }
    add(names_.token_id, safe(id.token_id));
    add(names_.token_type, to_string(id.type));

    // A scope holding a comma cannot be represented in a comma-separated list without letting
    // it pose as two scopes to the upstream, so such scopes are left out.
    std::string scopes;
    scopes.swap(scratch);  // reuse the scratch capacity for the list
    scopes.clear();
    for (const auto& s : who.scopes) {
        std::string cleaned;
        std::string_view v = s;
        if (needs_cleaning(v)) {
            cleaned = header_safe(v);
            v = cleaned;
        }
        if (v.empty() || v.find(',') != std::string_view::npos) {
            continue;
        }
        if (!scopes.empty()) {
            scopes.push_back(',');
        }
        scopes += v;
    }
    add(names_.scopes, scopes);
    scopes.swap(scratch);

    if (!who.claims.is_object()) {
        return;
    }
    if (!who.claims.empty()) {
        // claims_compact is rendered once per verification; re-render only if it is missing or
        // was not produced by compact_ascii_json (it must be ASCII without controls).
        const bool precomputed_ok =
            !who.claims_compact.empty() &&
            std::all_of(who.claims_compact.begin(), who.claims_compact.end(), [](char c) {
                const auto u = static_cast<unsigned char>(c);
                return u >= 0x20 && u < 0x7f;
            });
        if (precomputed_ok) {
            add(names_.claims, who.claims_compact);
        } else {
            scratch = compact_ascii_json(who.claims);
            add(names_.claims, scratch);
        }
    }
    for (const auto& [claim, header] : names_.claims_to_headers) {
        const auto it = who.claims.find(claim);
        if (it == who.claims.end() || it->is_null()) {
            continue;
        }
        if (it->is_string()) {
            // Verbatim, so the upstream sees exactly the claim; a value with control characters
            // cannot be sent verbatim and is skipped rather than silently altered.
            const auto& s = it->get_ref<const std::string&>();
            if (!has_ctl(s)) {
                add(header, s);
            }
        } else {
            scratch = compact_ascii_json(*it);
            add(header, scratch);
        }
    }
}

}  // namespace clerk::core
