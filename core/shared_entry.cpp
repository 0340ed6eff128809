#include "core/shared_entry.hpp"

#include "core/token_type.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <utility>

namespace clerk::core {
namespace {

using json = nlohmann::json;
using digest = std::array<std::uint8_t, 32>;

digest hmac(const std::uint8_t* key, std::size_t key_len, std::string_view a,
            std::string_view b = {}) {
    digest out{};
    // One-shot HMAC over a || b without concatenating: the key is short, so two EVP_MAC calls
    // would cost more than the copy below.
    std::string data;
    data.reserve(a.size() + b.size() + 1);
    data.append(a);
    data.push_back('\0');  // separates the parts: ("ab","c") and ("a","bc") differ
    data.append(b);
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, static_cast<int>(key_len),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
    OPENSSL_cleanse(data.data(), data.size());
    return out;
}

void append_hex(std::string& out, const std::uint8_t* p, std::size_t n) {
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < n; ++i) {
        out += hex[p[i] >> 4];
        out += hex[p[i] & 0xf];
    }
}

/// Rejection reasons come back from Redis as text; the cache keeps only static strings.
std::string_view static_reason(std::string_view r) {
    static constexpr std::array<std::string_view, 6> known{"not_found", "revoked",  "expired",
                                                           "invalid",   "inactive", "malformed"};
    for (auto k : known) {
        if (k == r) {
            return k;
        }
    }
    return "invalid";
}

constexpr std::string_view version_tag = "v1";

/// A string member, or "" when absent or of another type (json::value() would throw then).
std::string string_member(const json& j, const char* name) {
    const auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

shared_entry_codec::shared_entry_codec(std::string_view clerk_key, std::string prefix)
    : prefix_(std::move(prefix)) {
    const auto* k = reinterpret_cast<const std::uint8_t*>(clerk_key.data());
    name_key_ = hmac(k, clerk_key.size(), "clerk-m2m-proxy shared cache key name v1");
    mac_key_ = hmac(k, clerk_key.size(), "clerk-m2m-proxy shared cache value mac v1");
}

std::string shared_entry_codec::key_for(std::string_view token) const {
    const auto d = hmac(name_key_.data(), name_key_.size(), token);
    std::string out = prefix_;
    append_hex(out, d.data(), d.size());
    return out;
}

std::array<std::uint8_t, 32> shared_entry_codec::mac(std::string_view key,
                                                     std::string_view payload) const {
    return hmac(mac_key_.data(), mac_key_.size(), key, payload);
}

std::string shared_entry_codec::seal(std::string_view key, std::string_view payload) const {
    const auto m = mac(key, payload);
    std::string out;
    append_hex(out, m.data(), m.size());
    out += payload;
    return out;
}

std::string shared_entry_codec::encode_positive(std::string_view key, const identity& id,
                                                long long until_ms) const {
    json j{{"v", version_tag},
           {"until", until_ms},
           {"type", to_string(id.type)},
           {"jwt", id.format == token_format::jwt},
           {"sub", id.who->subject},
           {"tid", id.token_id},
           {"scopes", id.who->scopes},
           {"claims", id.who->claims_compact.empty() ? json() : id.who->claims}};  // "": none/deep
    if (id.expires_at_ms) {
        j["exp"] = *id.expires_at_ms;
    }
    if (id.who->audience) {
        j["aud"] = *id.who->audience;
    }
    return seal(key, j.dump(-1, ' ', true, json::error_handler_t::replace));
}

std::string shared_entry_codec::encode_negative(std::string_view key, std::string_view reason,
                                                long long until_ms) const {
    const json j{{"v", version_tag}, {"until", until_ms}, {"reason", reason}};
    return seal(key, j.dump(-1, ' ', true, json::error_handler_t::replace));
}

shared_entry_codec::decode_status shared_entry_codec::decode(std::string_view key,
                                                             std::string_view value,
                                                             long long now_ms, entry& out) const {
    out = {};
    if (value.size() < 64) {
        return decode_status::bad_mac;
    }
    const auto payload = value.substr(64);
    const auto m = mac(key, payload);
    std::string expected;
    append_hex(expected, m.data(), m.size());
    if (CRYPTO_memcmp(expected.data(), value.data(), 64) != 0) {
        return decode_status::bad_mac;
    }
    // Authentic from here on (written by a proxy holding the same Clerk key): still parsed
    // defensively, as a newer version may have written it.
    const json j = json::parse(payload, nullptr, false);
    if (!j.is_object() || string_member(j, "v") != version_tag) {
        return decode_status::malformed;
    }
    const auto until = j.find("until");
    if (until == j.end() || !until->is_number_integer()) {
        return decode_status::malformed;
    }
    out.until_ms = until->get<long long>();
    if (out.until_ms <= now_ms) {
        return decode_status::expired;
    }
    if (const auto r = j.find("reason"); r != j.end()) {
        if (!r->is_string()) {
            return decode_status::malformed;
        }
        out.negative_reason = static_reason(r->get_ref<const std::string&>());
        return decode_status::ok;
    }
    auto id = std::make_shared<identity>();
    principal who;
    const auto type = parse_token_type(string_member(j, "type"));
    const auto sub = j.find("sub");
    const auto tid = j.find("tid");
    const auto scopes = j.find("scopes");
    if (!type || sub == j.end() || !sub->is_string() || tid == j.end() || !tid->is_string() ||
        scopes == j.end() || !scopes->is_array()) {
        return decode_status::malformed;
    }
    id->type = *type;
    const auto jwt = j.find("jwt");
    id->format = jwt != j.end() && jwt->is_boolean() && jwt->get<bool>() ? token_format::jwt
                                                                         : token_format::opaque;
    who.subject = sub->get<std::string>();
    id->token_id = tid->get<std::string>();
    for (const auto& s : *scopes) {
        if (!s.is_string()) {
            return decode_status::malformed;
        }
        who.scopes.push_back(s.get<std::string>());
    }
    if (const auto c = j.find("claims"); c != j.end() && (c->is_object() || c->is_null())) {
        who.claims = *c;
        if (!c->is_null() && !c->empty()) {
            who.claims_compact = compact_ascii_json(*c);
        }
    }
    if (const auto e = j.find("exp"); e != j.end()) {
        if (!e->is_number_integer()) {
            return decode_status::malformed;
        }
        id->expires_at_ms = e->get<long long>();
        if (*id->expires_at_ms <= now_ms) {
            return decode_status::expired;
        }
    }
    if (const auto a = j.find("aud"); a != j.end()) {
        if (!a->is_array()) {
            return decode_status::malformed;
        }
        std::vector<std::string> aud;
        for (const auto& s : *a) {
            if (!s.is_string()) {
                return decode_status::malformed;
            }
            aud.push_back(s.get<std::string>());
        }
        who.audience = std::move(aud);
    }
    id->who = std::make_shared<const principal>(std::move(who));
    out.id = std::move(id);
    return decode_status::ok;
}

}  // namespace clerk::core
