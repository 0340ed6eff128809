#include "proxy/http/forward_auth.hpp"

#include "proxy/http/http_wire.hpp"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <cctype>

namespace clerk::proxy {
namespace {

namespace http = boost::beast::http;

/// RFC 9110 §5.6.2 tchar.
bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isalnum(c) != 0 ||
               std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                   std::string_view::npos;
    });
}

/// The one value of `name`: nullopt-like empty view with `count` telling absent (0), one (1)
/// or repeated (2).
struct one_field {
    std::string_view value;
    int count = 0;
};

one_field field_of(const header_fields& h, std::string_view name) {
    one_field f;
    for (auto [it, end] = h.equal_range(name); it != end; ++it) {
        f.value = it->value();
        if (++f.count == 2) {
            break;
        }
    }
    return f;
}

original_request from_family(const header_fields& h, std::string_view method_name,
                             const one_field& uri, std::string_view check_method) {
    original_request r;
    if (uri.count > 1) {
        r.reason = "repeated_original_uri";
        return r;
    }
    if (uri.value.empty()) {
        r.reason = "empty_original_uri";
        return r;
    }
    r.target = uri.value;
    const auto m = field_of(h, method_name);
    if (m.count > 1) {
        r.reason = "repeated_original_method";
        return r;
    }
    r.method = m.count == 0 ? check_method : m.value;
    if (!is_token(r.method)) {
        r.reason = "bad_original_method";
    }
    return r;
}

}  // namespace

original_request original_request_of(const header_fields& check, std::string_view check_method,
                                     std::string_view check_target) {
    if (const auto uri = field_of(check, "X-Forwarded-Uri"); uri.count > 0) {
        return from_family(check, "X-Forwarded-Method", uri, check_method);
    }
    if (const auto uri = field_of(check, "X-Original-URI"); uri.count > 0) {
        return from_family(check, "X-Original-Method", uri, check_method);
    }
    if (auto url = field_of(check, "X-Original-URL"); url.count > 0) {
        // ingress-nginx's external auth sends the whole URL ("https://host/path?q"): its
        // origin-form part is the URI.
        const auto scheme_end = url.value.find("://");
        const auto path = scheme_end == std::string_view::npos
                              ? std::string_view::npos
                              : url.value.find('/', scheme_end + 3);
        if (url.count == 1 && !url.value.empty()) {
            if (path == std::string_view::npos) {
                return {{}, {}, "bad_original_url"};
            }
            url.value = url.value.substr(path);
        }
        return from_family(check, "X-Original-Method", url, check_method);
    }
    return {check_method, check_target, {}};
}

void append_check_allowed(std::string& out, unsigned version, bool keep_alive,
                          std::string_view request_id, const core::header_rules& rules,
                          const core::identity* id, std::string& scratch) {
    append_status_line(out, version, 200, {});
    out += "Content-Length: 0\r\nCache-Control: no-store\r\nX-Request-Id: ";
    out += request_id;
    out += "\r\n";
    const auto start = out.size();
    if (id != nullptr) {
        rules.for_each_identity_header(*id, scratch,
                                       [&out](std::string_view name, std::string_view value) {
                                           out += name;
                                           out += ": ";
                                           out += value;
                                           out += "\r\n";
                                       });
    }
    // Every identity header is present, empty when it has no value (no identity on an `auth:
    // none` route, no scopes, not a machine): gateways copy a fixed list of names, and Caddy
    // 2.6 turns a name missing from the answer into the literal text of its placeholder.
    const auto present = [&out, start](std::string_view name) {
        const std::string_view added(out.data() + start, out.size() - start);
        for (std::size_t at = 0; at < added.size();) {
            const auto eol = added.find("\r\n", at);
            const auto line = added.substr(at, eol - at);
            if (line.size() > name.size() && line[name.size()] == ':' &&
                boost::beast::iequals(line.substr(0, name.size()), name)) {
                return true;
            }
            at = eol + 2;
        }
        return false;
    };
    const auto& names = rules.names();
    const auto empty_unless_present = [&](std::string_view name) {
        if (!name.empty() && !present(name)) {
            out += name;
            out += ": \r\n";
        }
    };
    for (const auto* name : {&names.subject, &names.machine_id, &names.token_id, &names.token_type,
                             &names.scopes, &names.claims, &names.user_id, &names.org_id}) {
        empty_unless_present(*name);
    }
    for (const auto& [claim, header] : names.claims_to_headers) {
        empty_unless_present(header);
    }
    if (!keep_alive) {
        out += "Connection: close\r\n";
    } else if (version == 10) {
        out += "Connection: keep-alive\r\n";
    }
    out += "\r\n";
}

}  // namespace clerk::proxy
