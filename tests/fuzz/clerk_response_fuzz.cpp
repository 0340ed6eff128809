// libFuzzer target: the Clerk BAPI verify-response mapper (core/clerk_response.hpp).
//
// Input: "<status>\n<Retry-After>\n<body>" (a missing or non-numeric status line means 200, so
// a bare JSON body exercises the success path). Invariants: only a 200 is ever valid; a valid
// outcome has an identity parsed from a JSON object with object == "machine_to_machine_token"
// and string id and subject, that is neither revoked nor expired at `now`; rate_limited only
// for 429; a Retry-After is at most one day.
#include "core/clerk_response.hpp"
#include "fuzz/fuzz_util.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clerk::core::clerk_outcome_kind;
using clerk::fuzz::check;
using json = nlohmann::json;

// 2024-05-28T08:00:00Z: the protocol doc's sample `expiration` is 1716883200000 ms.
constexpr clerk::core::sys_time now{std::chrono::milliseconds(1716883200000)};

// Independent check of the 200 body: what a valid outcome requires, read without clerk_response.
bool body_is_live_m2m_token(std::string_view body, long long now_ms) {
    const json j = json::parse(body.begin(), body.end(), nullptr, false, false);
    if (!j.is_object()) {
        return false;
    }
    const auto str = [&j](const char* k) {
        const auto it = j.find(k);
        return it != j.end() && it->is_string();
    };
    if (!str("object") || j["object"] != "machine_to_machine_token" || !str("id") ||
        !str("subject")) {
        return false;
    }
    if (j.contains("revoked") && j["revoked"] == true) {
        return false;
    }
    if (j.contains("expired") && j["expired"] == true) {
        return false;
    }
    if (const auto it = j.find("expiration"); it != j.end() && it->is_number()) {
        // Conservative: integer expirations at or before now are never live.
        if (it->is_number_integer() && it->get<long long>() <= now_ms) {
            return false;
        }
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in = clerk::fuzz::as_view(data, size);
    const std::vector<std::string_view> parts = clerk::fuzz::split_lines(in, 3);

    int status = 200;
    std::string_view retry_after;
    std::string_view body = in;
    if (parts.size() == 3) {
        int s = 0;
        const auto line = parts[0];
        const auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), s);
        if (ec == std::errc{} && ptr == line.data() + line.size()) {
            status = s;
            retry_after = parts[1];
            body = parts[2];
        }
    }

    const long long now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    for (const int st : {status, 200}) {
        const clerk::core::clerk_outcome o =
            clerk::core::map_verify_response(st, retry_after, body, now);
        check((o.kind == clerk_outcome_kind::valid) == (o.id != nullptr), "id set iff valid");
        check(o.kind != clerk_outcome_kind::valid || st == 200, "a non-200 status is never valid");
        check(o.kind != clerk_outcome_kind::rate_limited || st == 429, "rate_limited iff 429");
        check(o.retry_after == std::nullopt || o.kind == clerk_outcome_kind::rate_limited,
              "retry_after only when rate limited");
        if (o.retry_after) {
            check(o.retry_after->count() >= 0 && o.retry_after->count() <= 86400,
                  "Retry-After is 0..1 day");
        }
        if (st >= 500 && st <= 599) {
            check(o.kind == clerk_outcome_kind::retryable, "5xx is retryable");
        }
        if (st == 401 || st == 403) {
            check(o.kind == clerk_outcome_kind::key_rejected, "401/403: our key is wrong");
        }
        if (o.kind != clerk_outcome_kind::valid) {
            continue;
        }
        check(body_is_live_m2m_token(body, now_ms), "valid only for a live m2m token object");
        const clerk::core::identity& id = *o.id;
        check(!id.who->subject.empty() && !id.token_id.empty(), "identity has subject and id");
        check(id.type == clerk::core::token_type::m2m_token, "identity is an m2m token");
        check(!id.expires_at_ms || *id.expires_at_ms > now_ms, "a valid token is not expired");
        for (const auto& s : id.who->scopes) {
            check(s.find(',') == std::string::npos, "no comma in a scope");
        }
        for (const char c : id.who->claims_compact) {
            const auto u = static_cast<unsigned char>(c);
            check(u >= 0x20 && u < 0x7f, "claims_compact is printable ASCII");
        }
        const auto parsed = clerk::core::parse_m2m_token(body);
        check(parsed.has_value() && parsed->who->subject == id.who->subject &&
                  parsed->token_id == id.token_id,
              "parse_m2m_token agrees with map_verify_response");
    }
    // The other opaque types' bodies (api_key, oauth_token): the same status rules, and an
    // identity only from a 200 whose object is that type's.
    for (const auto type :
         {clerk::core::token_type::api_key, clerk::core::token_type::oauth_token}) {
        const auto o = clerk::core::map_verify_response(status, retry_after, body, now, type);
        check((o.kind == clerk_outcome_kind::valid) == (o.id != nullptr), "id set iff valid");
        check(o.kind != clerk_outcome_kind::valid || status == 200,
              "a non-200 status is never valid");
        if (o.kind == clerk_outcome_kind::valid) {
            check(o.id->type == type, "the identity has the verified type");
            check(!o.id->expires_at_ms || *o.id->expires_at_ms > now_ms,
                  "a valid token is not expired");
            const auto parsed = clerk::core::parse_verified_token(body, type);
            check(parsed && parsed->who->subject == o.id->who->subject,
                  "parse agrees with the mapping");
            check(type == clerk::core::token_type::oauth_token || !o.id->who->audience,
                  "only OAuth tokens carry an audience");
        }
    }
    (void)clerk::core::parse_retry_after(retry_after);
    return 0;
}
