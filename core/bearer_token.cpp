#include "core/bearer_token.hpp"

#include "core/ascii.hpp"
#include "core/base64url.hpp"

#include <nlohmann/json.hpp>

#include <optional>

namespace clerk::core {
namespace {

bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

// Any whitespace inside a token makes the header ambiguous (RFC 6750 §2.1 b64token has none).
// One pass without an early exit, so the compiler vectorizes it: JWTs are ~1 KiB, and this runs
// on every request, before the cache lookup.
bool has_space(std::string_view t) {
    unsigned char any = 0;  // not bool: GCC 12 vectorizes an OR-reduction over bytes only
    for (const char ch : t) {
        const auto c = static_cast<unsigned char>(ch);
        // ' ', and '\t' '\n' '\v' '\f' '\r' (9..13)
        any |= static_cast<unsigned char>((c == ' ') | (static_cast<unsigned char>(c - '\t') < 5));
    }
    return any != 0;
}

std::string_view trim_ows(std::string_view v) {
    while (!v.empty() && is_ows(v.front())) {
        v.remove_prefix(1);
    }
    while (!v.empty() && is_ows(v.back())) {
        v.remove_suffix(1);
    }
    return v;
}

bool is_b64url_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

// RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
// Opaque tokens must have this shape; `ak_` secrets do contain '+', '/' and '='.
bool is_b64token(std::string_view t) {
    std::size_t n = 0;
    while (n < t.size() &&
           (is_b64url_char(t[n]) || t[n] == '.' || t[n] == '~' || t[n] == '+' || t[n] == '/')) {
        ++n;
    }
    if (n == 0) {
        return false;
    }
    while (n < t.size() && t[n] == '=') {
        ++n;
    }
    return n == t.size();
}

/// docs/clerk-protocol.md §4.1 isJwtFormat: ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$
bool is_jwt_format(std::string_view t) {
    int dots = 0;
    bool segment_empty = true;
    for (const char c : t) {
        if (c == '.') {
            if (segment_empty || ++dots > 2) {
                return false;
            }
            segment_empty = true;
        } else if (is_b64url_char(c)) {
            segment_empty = false;
        } else {
            return false;
        }
    }
    return dots == 2 && !segment_empty;
}

/// What classification needs from a JWT's header and payload (no signature is checked).
struct jwt_peek {
    bool machine_subject = false;   ///< payload.sub is a string starting with "mch_"
    bool access_token_typ = false;  ///< header.typ is "at+jwt" or "application/at+jwt"
};

/// Reads one member of a JSON object without building it: validates the whole text (strict
/// JSON, as nlohmann::json::parse) and records the top-level member `name` when its value is a
/// string (the last occurrence wins, as in a parsed object). No DOM, no allocation per member.
class member_reader : public nlohmann::json_sax<nlohmann::json> {
public:
    explicit member_reader(std::string_view name) : name_(name) {}

    bool is_object() const { return top_object_; }
    /// The member's value when it is a string; nullopt when absent or of another type.
    const std::optional<std::string>& value() const { return value_; }

    bool null() override { return scalar(); }
    bool boolean(bool) override { return scalar(); }
    bool number_integer(number_integer_t) override { return scalar(); }
    bool number_unsigned(number_unsigned_t) override { return scalar(); }
    bool number_float(number_float_t, const string_t&) override { return scalar(); }
    bool binary(binary_t&) override { return scalar(); }
    bool string(string_t& s) override {
        if (depth_ == 1 && wanted_) {
            value_ = std::move(s);
        }
        wanted_ = false;
        return true;
    }
    bool start_object(std::size_t) override {
        if (depth_ == 0) {
            top_object_ = true;
        }
        return nested();
    }
    bool end_object() override {
        --depth_;
        return true;
    }
    bool start_array(std::size_t) override { return nested(); }
    bool end_array() override {
        --depth_;
        return true;
    }
    bool key(string_t& k) override {
        wanted_ = depth_ == 1 && k == name_;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
        failed_ = true;
        return false;
    }
    bool failed() const { return failed_; }

private:
    bool scalar() {
        if (depth_ == 1 && wanted_) {
            value_.reset();  // present, but not a string
        }
        wanted_ = false;
        return true;
    }
    bool nested() {
        if (depth_ == 1 && wanted_) {
            value_.reset();
        }
        wanted_ = false;
        ++depth_;
        return true;
    }

    std::string_view name_;
    std::size_t depth_ = 0;
    bool wanted_ = false;
    bool top_object_ = false;
    bool failed_ = false;
    std::optional<std::string> value_;
};

/// The string value of member `name` of the JSON object that `segment` (base64url) encodes:
/// nullopt (outer) when the segment is not base64url of a JSON object.
std::optional<std::optional<std::string>> read_member(std::string_view segment,
                                                      std::string_view name) {
    auto bytes = base64url_decode(segment);
    if (!bytes) {
        return std::nullopt;
    }
    member_reader reader(name);
    const bool ok = nlohmann::json::sax_parse(*bytes, &reader);
    if (!ok || reader.failed() || !reader.is_object()) {
        return std::nullopt;
    }
    return reader.value();
}

/// nullopt unless `t` is JWT-shaped with a header and payload that are base64url JSON objects.
std::optional<jwt_peek> peek_jwt(std::string_view t) {
    if (!is_jwt_format(t)) {
        return std::nullopt;
    }
    const auto dot1 = t.find('.');
    const auto dot2 = t.find('.', dot1 + 1);
    const auto typ = read_member(t.substr(0, dot1), "typ");
    if (!typ) {
        return std::nullopt;
    }
    const auto sub = read_member(t.substr(dot1 + 1, dot2 - dot1 - 1), "sub");
    if (!sub) {
        return std::nullopt;
    }
    jwt_peek peek;
    peek.machine_subject = *sub && (*sub)->starts_with("mch_");
    peek.access_token_typ = *typ && (**typ == "at+jwt" || **typ == "application/at+jwt");
    return peek;
}

bool has_prefix_and_body(std::string_view t, std::string_view prefix) {
    return t.size() > prefix.size() && t.starts_with(prefix);
}

classification ok(token_type type, token_format format) {
    return classification{classify_status::ok, token_class{type, format}};
}

}  // namespace

bearer_result extract_bearer(std::span<const std::string_view> values) {
    bearer_result r;
    if (values.empty()) {
        return r;  // missing
    }
    if (values.size() > 1) {
        // Two credentials are ambiguous; never pick one (RFC 6750 §3.1 invalid_request).
        r.status = bearer_status::invalid_request;
        return r;
    }
    const std::string_view v = trim_ows(values.front());
    constexpr std::string_view scheme = "bearer";
    if (v.size() < scheme.size() || !iequals(v.substr(0, scheme.size()), scheme)) {
        return r;  // another scheme (Basic, ...) or an empty value: no bearer credential
    }
    if (v.size() == scheme.size()) {
        r.status = bearer_status::invalid_request;  // "Bearer" alone: the token is empty
        return r;
    }
    if (!is_ows(v[scheme.size()])) {
        return r;  // "Bearerx ...": a different scheme name
    }
    // After trimming, what follows the whitespace run is non-empty.
    std::string_view token = v.substr(scheme.size());
    while (!token.empty() && is_ows(token.front())) {
        token.remove_prefix(1);
    }
    if (token.empty() || token.size() > max_token_bytes) {
        r.status = bearer_status::invalid_request;
        return r;
    }
    if (has_space(token)) {
        r.status = bearer_status::invalid_request;
        return r;
    }
    r.status = bearer_status::ok;
    r.token = token;
    return r;
}

classification classify_token(std::string_view token) {
    // Bounded input: extract_bearer never yields more, and the fuzzer gets the same bound.
    if (token.empty() || token.size() > max_token_bytes) {
        return {};
    }
    // docs/reference.md §4 order. Prefix checks run before any decoding, so a prefixed opaque token
    // that happens to look like a JWT (the alphabet includes '_') keeps its prefix type.
    if (has_prefix_and_body(token, "mt_")) {
        return is_b64token(token) ? ok(token_type::m2m_token, token_format::opaque)
                                  : classification{};
    }
    const std::optional<jwt_peek> jwt = peek_jwt(token);
    if (jwt && jwt->machine_subject) {
        return ok(token_type::m2m_token, token_format::jwt);
    }
    if (has_prefix_and_body(token, "oat_")) {
        return is_b64token(token) ? ok(token_type::oauth_token, token_format::opaque)
                                  : classification{};
    }
    if (jwt && jwt->access_token_typ) {
        return ok(token_type::oauth_token, token_format::jwt);
    }
    if (has_prefix_and_body(token, "ak_")) {
        return is_b64token(token) ? ok(token_type::api_key, token_format::opaque)
                                  : classification{};
    }
    if (jwt) {
        return ok(token_type::session_token, token_format::jwt);
    }
    return {};  // malformed: neither a known prefix nor a decodable JWT
}

}  // namespace clerk::core
