#include "core/clerk_response.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace clerk::core {
namespace {

using json = nlohmann::json;

// Identity values end up in forwarded header values and in access-log fields. Clerk's IDs are
// short ASCII words (`mt_<32 hex>`, `mch_<27 word chars>`), so anything else is refused as a
// malformed response rather than forwarded: no control characters, no spaces, no commas (the
// scopes header is comma-separated), bounded length.
constexpr std::size_t max_id_bytes = 256;
constexpr std::size_t max_scopes = 1024;

bool is_safe_word(std::string_view s) {
    if (s.empty() || s.size() > max_id_bytes) {
        return false;
    }
    for (unsigned char c : s) {
        if (c < 0x21 || c > 0x7e || c == ',') {
            return false;
        }
    }
    return true;
}

json parse_json(std::string_view body) {
    // No exceptions: a parse failure yields a "discarded" value. Comments are not JSON.
    return json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false,
                       /*ignore_comments=*/false);
}

// `expiration` in ms: integers as they are; a fractional number is floored; out-of-range
// values saturate (a far-future expiration is "never expires soon", a far-past one is expired).
std::optional<long long> expiration_ms(const json& v) {
    if (v.is_number_integer()) {
        return v.get<long long>();
    }
    if (v.is_number_unsigned()) {
        auto u = v.get<std::uint64_t>();
        return u > static_cast<std::uint64_t>(std::numeric_limits<long long>::max())
                   ? std::numeric_limits<long long>::max()
                   : static_cast<long long>(u);
    }
    double d = v.get<double>();
    if (!std::isfinite(d)) {
        return std::nullopt;
    }
    constexpr double hi = 9.0e18;
    if (d >= hi) {
        return static_cast<long long>(hi);
    }
    if (d <= -hi) {
        return static_cast<long long>(-hi);
    }
    return static_cast<long long>(std::floor(d));
}

// A boolean flag that may be absent or null (false); any other type makes the body malformed.
std::optional<bool> flag(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return false;
    }
    if (!it->is_boolean()) {
        return std::nullopt;
    }
    return it->get<bool>();
}

// 400/404/422 carry `errors[0].code`; a code that says revoked/expired refines the reason.
std::string_view refine_reason(std::string_view fallback, std::string_view body) {
    json j = parse_json(body);
    if (!j.is_object()) {
        return fallback;
    }
    auto errs = j.find("errors");
    if (errs == j.end() || !errs->is_array() || errs->empty() || !(*errs)[0].is_object()) {
        return fallback;
    }
    const json& first = (*errs)[0];
    auto code = first.find("code");
    if (code == first.end() || !code->is_string()) {
        return fallback;
    }
    const auto& s = code->get_ref<const std::string&>();
    if (s.find("revoked") != std::string::npos) {
        return "revoked";
    }
    if (s.find("expired") != std::string::npos) {
        return "expired";
    }
    return fallback;
}

clerk_outcome outcome(clerk_outcome_kind k, std::string_view reason) {
    return clerk_outcome{k, reason, nullptr, std::nullopt};
}

}  // namespace

namespace {

std::string_view expected_object(token_type type) {
    switch (type) {
        case token_type::api_key:
            return "api_key";
        case token_type::oauth_token:
            return "clerk_idp_oauth_access_token";
        default:
            return "machine_to_machine_token";
    }
}

// `j` is consumed (claims are moved out).
std::optional<identity> identity_from(json& j, token_type type = token_type::m2m_token) {
    if (!j.is_object()) {
        return std::nullopt;
    }
    auto str = [&](const char* key) -> const std::string* {
        auto it = j.find(key);
        if (it == j.end() || !it->is_string()) {
            return nullptr;
        }
        return &it->get_ref<const std::string&>();
    };
    const std::string* object = str("object");
    const std::string* id = str("id");
    const std::string* subject = str("subject");
    if (object == nullptr || *object != expected_object(type) || id == nullptr ||
        subject == nullptr || !is_safe_word(*id) || !is_safe_word(*subject)) {
        return std::nullopt;
    }

    identity out;
    out.type = type;
    out.format = token_format::opaque;
    out.token_id = *id;
    principal who;
    who.subject = *subject;

    if (auto it = j.find("scopes"); it != j.end() && !it->is_null()) {
        if (!it->is_array() || it->size() > max_scopes) {
            return std::nullopt;
        }
        who.scopes.reserve(it->size());
        for (const auto& s : *it) {
            if (!s.is_string() || !is_safe_word(s.get_ref<const std::string&>())) {
                return std::nullopt;
            }
            who.scopes.push_back(s.get<std::string>());
        }
    }

    if (auto it = j.find("claims"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) {
            return std::nullopt;
        }
        who.claims = std::move(*it);
        who.claims_compact = compact_ascii_json(who.claims);
    }

    if (auto it = j.find("expiration"); it != j.end() && !it->is_null()) {
        if (!it->is_number()) {
            return std::nullopt;
        }
        auto ms = expiration_ms(*it);
        if (!ms) {
            return std::nullopt;
        }
        out.expires_at_ms = *ms;
    }

    // An OAuth token's recipients (`aud`, string or array of strings), checked against
    // auth.audience like a JWT's (docs/reference.md §12).
    if (type == token_type::oauth_token) {
        if (auto it = j.find("aud"); it != j.end() && !it->is_null()) {
            std::vector<std::string> aud;
            if (it->is_string()) {
                aud.push_back(it->get<std::string>());
            } else if (it->is_array() && it->size() <= max_scopes) {
                for (const auto& a : *it) {
                    if (!a.is_string()) {
                        return std::nullopt;
                    }
                    aud.push_back(a.get<std::string>());
                }
            } else {
                return std::nullopt;
            }
            who.audience = std::move(aud);
        }
    }
    out.who = std::make_shared<const principal>(std::move(who));
    return out;
}

}  // namespace

std::optional<identity> parse_m2m_token(std::string_view body) {
    json j = parse_json(body);
    return identity_from(j);
}

std::optional<identity> parse_verified_token(std::string_view body, token_type type) {
    json j = parse_json(body);
    return identity_from(j, type);
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
    }
    if (value.empty() || value.size() > 12) {
        return std::nullopt;
    }
    std::uint64_t n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc{} || ptr != value.data() + value.size()) {
        return std::nullopt;
    }
    constexpr std::uint64_t one_day = 86400;
    return std::chrono::seconds(static_cast<long long>(n > one_day ? one_day : n));
}

clerk_outcome map_verify_response(int status, std::string_view retry_after, std::string_view body,
                                  sys_time now, token_type type) {
    using k = clerk_outcome_kind;
    switch (status) {
        case 200: {
            // The whole body must parse, and the flags must be booleans: anything odd is a
            // Clerk failure (503), never an accept.
            json j = parse_json(body);
            if (!j.is_object()) {
                return outcome(k::retryable, "malformed_response");
            }
            if (type == token_type::oauth_token) {
                // Clerk's answer for a token that is no longer active. The SDK treats it as
                // signed in with no identity; here it is a refusal (stricter, on purpose).
                if (const auto active = j.find("active");
                    active != j.end() && active->is_boolean() && !active->get<bool>()) {
                    return outcome(k::invalid, "inactive");
                }
            }
            auto revoked = flag(j, "revoked");
            auto expired = flag(j, "expired");
            auto id = identity_from(j, type);
            if (!revoked || !expired || !id) {
                return outcome(k::retryable, "malformed_response");
            }
            if (*revoked) {
                return outcome(k::invalid, "revoked");
            }
            long long now_ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch())
                    .count();
            if (*expired || (id->expires_at_ms && *id->expires_at_ms <= now_ms)) {
                return outcome(k::invalid, "expired");
            }
            return clerk_outcome{k::valid, "", std::make_shared<const identity>(std::move(*id)),
                                 std::nullopt};
        }
        case 404:
            return outcome(k::invalid, refine_reason("not_found", body));
        case 400:
        case 422:
            return outcome(k::invalid, refine_reason("invalid", body));
        case 401:
        case 403:
            return outcome(k::key_rejected, status == 401 ? "status_401" : "status_403");
        case 429: {
            clerk_outcome o = outcome(k::rate_limited, "status_429");
            o.retry_after = parse_retry_after(retry_after);
            return o;
        }
        default:
            break;
    }
    if (status >= 500 && status <= 599) {
        return outcome(k::retryable, "status_5xx");
    }
    return outcome(k::unexpected, "unexpected_status");
}

}  // namespace clerk::core
