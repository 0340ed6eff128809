#include "core/bearer_token.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using clerk::core::bearer_status;
using clerk::core::classify_status;
using clerk::core::classify_token;
using clerk::core::extract_bearer;
using clerk::core::max_token_bytes;
using clerk::core::token_format;
using clerk::core::token_type;

namespace {

struct extract_case {
    std::string_view name;
    std::vector<std::string_view> values;
    bearer_status status;
    std::string_view token;
};

const extract_case extract_cases[] = {
    {"no header", {}, bearer_status::missing, ""},
    {"canonical", {"Bearer mt_abc"}, bearer_status::ok, "mt_abc"},
    {"lower-case scheme", {"bearer mt_abc"}, bearer_status::ok, "mt_abc"},
    {"upper-case scheme", {"BEARER mt_abc"}, bearer_status::ok, "mt_abc"},
    {"mixed-case scheme", {"bEaReR mt_abc"}, bearer_status::ok, "mt_abc"},
    {"multiple spaces", {"Bearer    mt_abc"}, bearer_status::ok, "mt_abc"},
    {"tab separator", {"Bearer\tmt_abc"}, bearer_status::ok, "mt_abc"},
    {"trailing whitespace", {"Bearer mt_abc  \t"}, bearer_status::ok, "mt_abc"},
    {"leading whitespace", {"  Bearer mt_abc"}, bearer_status::ok, "mt_abc"},
    {"two headers", {"Bearer mt_a", "Bearer mt_b"}, bearer_status::invalid_request, ""},
    {"two headers, one basic", {"Basic eHl6", "Bearer mt_b"}, bearer_status::invalid_request, ""},
    {"bearer alone", {"Bearer"}, bearer_status::invalid_request, ""},
    {"bearer and spaces", {"Bearer   "}, bearer_status::invalid_request, ""},
    {"inner space", {"Bearer mt_a b"}, bearer_status::invalid_request, ""},
    {"inner tab", {"Bearer mt_a\tb"}, bearer_status::invalid_request, ""},
    {"inner newline", {"Bearer mt_a\nb"}, bearer_status::invalid_request, ""},
    {"inner carriage return", {"Bearer mt_a\rb"}, bearer_status::invalid_request, ""},
    {"inner vertical tab", {"Bearer mt_a\vb"}, bearer_status::invalid_request, ""},
    {"inner form feed", {"Bearer mt_a\fb"}, bearer_status::invalid_request, ""},
    {"space as the last byte of a long token",
     {"Bearer mt_abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnop q"},
     bearer_status::invalid_request,
     ""},
    // Neighbours of the whitespace range are not whitespace (classification refuses them later).
    {"backspace is not whitespace", {"Bearer mt_a\bb"}, bearer_status::ok, "mt_a\bb"},
    {"shift out is not whitespace",
     {"Bearer mt_a\x0e"
      "b"},
     bearer_status::ok,
     "mt_a\x0e"
     "b"},
    {"DEL and high bytes are not whitespace",
     {"Bearer mt_\x7f\xa0\xff"},
     bearer_status::ok,
     "mt_\x7f\xa0\xff"},
    {"basic scheme", {"Basic xyz"}, bearer_status::missing, ""},
    {"no scheme", {"mt_abc"}, bearer_status::missing, ""},
    {"scheme prefix of another word", {"Bearerx mt_abc"}, bearer_status::missing, ""},
    {"short value", {"Bea"}, bearer_status::missing, ""},
    {"empty value", {""}, bearer_status::missing, ""},
};

std::string bearer_of_size(std::size_t n) {
    return "Bearer " + std::string(n, 'a');
}

struct classify_case {
    std::string_view name;
    std::string_view token;
    classify_status status;
    token_type type;
    token_format format;
};

// JWT parts: base64url of the JSON in the comment.
// {"alg":"RS256","typ":"JWT","kid":"ins_1"}
#define H_JWT "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Imluc18xIn0"
// {"alg":"RS256","typ":"at+jwt","kid":"ins_1"}
#define H_AT "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Imluc18xIn0"
// {"alg":"RS256","typ":"application/at+jwt"}
#define H_APPAT "eyJhbGciOiJSUzI1NiIsInR5cCI6ImFwcGxpY2F0aW9uL2F0K2p3dCJ9"
// [1,2]
#define H_ARRAY "WzEsMl0"
// {"alg":   (truncated JSON)
#define H_BADJSON "eyJhbGciOg"
// {"jti":"mt_1","sub":"mch_2abc","exp":1753746916}
#define P_M2M "eyJqdGkiOiJtdF8xIiwic3ViIjoibWNoXzJhYmMiLCJleHAiOjE3NTM3NDY5MTZ9"
// {"sub":"user_1","sid":"sess_1"}
#define P_USER "eyJzdWIiOiJ1c2VyXzEiLCJzaWQiOiJzZXNzXzEifQ"
// {"exp":1}
#define P_NOSUB "eyJleHAiOjF9"
// {"sub":5}
#define P_SUBNUM "eyJzdWIiOjV9"
// "mch_x"   (a JSON string, not an object)
#define P_STRING "Im1jaF94Ig"
// {"sub":"<0xFF>"}   (invalid UTF-8)
#define P_BADUTF8 "eyJzdWIiOiL_In0"
// "sig"
#define SIG "c2ln"

constexpr classify_case classify_cases[] = {
    {"opaque m2m", "mt_8XOIucKvqHVr5tYP123456789abcdefghij", classify_status::ok,
     token_type::m2m_token, token_format::opaque},
    {"api key", "ak_LCWGdaM8mv8K4PC/57IICZQXAeWfCgF30DZaFXHoGn9=", classify_status::ok,
     token_type::api_key, token_format::opaque},
    {"opaque oauth", "oat_0123456789abcdef0123456789abcdef", classify_status::ok,
     token_type::oauth_token, token_format::opaque},
    {"m2m jwt", H_JWT "." P_M2M "." SIG, classify_status::ok, token_type::m2m_token,
     token_format::jwt},
    {"m2m jwt wins over at+jwt", H_AT "." P_M2M "." SIG, classify_status::ok, token_type::m2m_token,
     token_format::jwt},
    {"oauth jwt", H_AT "." P_USER "." SIG, classify_status::ok, token_type::oauth_token,
     token_format::jwt},
    {"oauth jwt application/at+jwt", H_APPAT "." P_USER "." SIG, classify_status::ok,
     token_type::oauth_token, token_format::jwt},
    {"session jwt", H_JWT "." P_USER "." SIG, classify_status::ok, token_type::session_token,
     token_format::jwt},
    {"session jwt without sub", H_JWT "." P_NOSUB "." SIG, classify_status::ok,
     token_type::session_token, token_format::jwt},
    {"session jwt with numeric sub", H_JWT "." P_SUBNUM "." SIG, classify_status::ok,
     token_type::session_token, token_format::jwt},
    {"mt_ prefix wins over jwt shape", "mt_a.b.c", classify_status::ok, token_type::m2m_token,
     token_format::opaque},
    {"oat_ jwt-shaped opaque", "oat_a.b.c", classify_status::ok, token_type::oauth_token,
     token_format::opaque},
    {"ak_ jwt-shaped opaque", "ak_a.b.c", classify_status::ok, token_type::api_key,
     token_format::opaque},
    // malformed
    {"random string", "hello-world", classify_status::malformed, {}, {}},
    {"empty", "", classify_status::malformed, {}, {}},
    {"prefix only mt_", "mt_", classify_status::malformed, {}, {}},
    {"prefix only ak_", "ak_", classify_status::malformed, {}, {}},
    {"mt_ with quote", "mt_a\"b", classify_status::malformed, {}, {}},
    {"mt_ with control", "mt_a\x01", classify_status::malformed, {}, {}},
    {"mt_ with inner padding", "mt_a=b", classify_status::malformed, {}, {}},
    {"wrong-case prefix", "MT_abc", classify_status::malformed, {}, {}},
    {"jwt with padding", H_JWT "==." P_USER "." SIG, classify_status::malformed, {}, {}},
    {"jwt two segments", H_JWT "." P_USER, classify_status::malformed, {}, {}},
    {"jwt four segments", H_JWT "." P_USER "." SIG "." SIG, classify_status::malformed, {}, {}},
    {"jwt empty signature", H_JWT "." P_USER ".", classify_status::malformed, {}, {}},
    {"jwt empty header", "." P_USER "." SIG, classify_status::malformed, {}, {}},
    {"jwt bad json header", H_BADJSON "." P_USER "." SIG, classify_status::malformed, {}, {}},
    {"jwt array header", H_ARRAY "." P_USER "." SIG, classify_status::malformed, {}, {}},
    {"jwt string payload", H_JWT "." P_STRING "." SIG, classify_status::malformed, {}, {}},
    {"jwt invalid utf-8 payload", H_JWT "." P_BADUTF8 "." SIG, classify_status::malformed, {}, {}},
    {"jwt not base64", "a.b.c", classify_status::malformed, {}, {}},
    {"jwt standard alphabet", H_JWT "." P_USER "+/." SIG, classify_status::malformed, {}, {}},
};

}  // namespace

TEST_CASE("extract_bearer", "[bearer]") {
    for (const auto& c : extract_cases) {
        SECTION(std::string(c.name)) {
            const auto r = extract_bearer(c.values);
            CHECK(r.status == c.status);
            CHECK(r.token == c.token);
        }
    }
}

TEST_CASE("extract_bearer token size limit", "[bearer]") {
    const std::string at_limit = bearer_of_size(max_token_bytes);
    const std::string over_limit = bearer_of_size(max_token_bytes + 1);
    const std::string_view ok_values[] = {at_limit};
    const std::string_view over_values[] = {over_limit};

    const auto ok = extract_bearer(ok_values);
    CHECK(ok.status == bearer_status::ok);
    CHECK(ok.token.size() == 4096);
    CHECK(extract_bearer(over_values).status == bearer_status::invalid_request);
}

TEST_CASE("extract_bearer returns a view into the header value", "[bearer]") {
    const std::string header = "Bearer mt_abc";
    const std::string_view values[] = {header};
    const auto r = extract_bearer(values);
    REQUIRE(r.status == bearer_status::ok);
    CHECK(r.token.data() == header.data() + 7);
}

TEST_CASE("classify_token", "[bearer]") {
    for (const auto& c : classify_cases) {
        SECTION(std::string(c.name)) {
            const auto r = classify_token(c.token);
            REQUIRE(r.status == c.status);
            if (c.status == classify_status::ok) {
                CHECK(r.cls.type == c.type);
                CHECK(r.cls.format == c.format);
            }
        }
    }
}

TEST_CASE("classify_token refuses oversized input", "[bearer]") {
    const std::string big = "mt_" + std::string(max_token_bytes, 'a');
    CHECK(classify_token(big).status == classify_status::malformed);
    const std::string fits = "mt_" + std::string(max_token_bytes - 3, 'a');
    CHECK(classify_token(fits).status == classify_status::ok);
}

#undef H_JWT
#undef H_AT
#undef H_APPAT
#undef H_ARRAY
#undef H_BADJSON
#undef P_M2M
#undef P_USER
#undef P_NOSUB
#undef P_SUBNUM
#undef P_STRING
#undef P_BADUTF8
#undef SIG

namespace {

std::string b64url(std::string_view bytes) {
    static constexpr std::string_view abc =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (const unsigned char c : bytes) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(abc[(acc >> bits) & 0x3F]);
        }
    }
    if (bits > 0) {
        out.push_back(abc[(acc << (6 - bits)) & 0x3F]);
    }
    return out;
}

// The DOM reading of a JWT's class (what classify_token did before it read members with a SAX
// parser): the oracle for JWT-shaped input.
classify_status oracle(std::string_view header, std::string_view payload, token_type& type) {
    const auto h = nlohmann::json::parse(header, nullptr, false);
    const auto p = nlohmann::json::parse(payload, nullptr, false);
    if (!h.is_object() || !p.is_object()) {
        return classify_status::malformed;
    }
    const auto sub = p.find("sub");
    const auto typ = h.find("typ");
    if (sub != p.end() && sub->is_string() &&
        sub->get_ref<const std::string&>().starts_with("mch_")) {
        type = token_type::m2m_token;
    } else if (typ != h.end() && typ->is_string() &&
               (*typ == "at+jwt" || *typ == "application/at+jwt")) {
        type = token_type::oauth_token;
    } else {
        type = token_type::session_token;
    }
    return classify_status::ok;
}

}  // namespace

TEST_CASE("classify_token reads JWT members like a parsed object", "[bearer][jwt]") {
    const std::vector<std::string> headers = {
        R"({"alg":"RS256"})",
        R"({"alg":"RS256","typ":"at+jwt"})",
        R"({"typ":"application/at+jwt"})",
        R"({"typ":"JWT","typ":"at+jwt"})",
        R"({"typ":"at+jwt","typ":"JWT"})",
        R"({"typ":["at+jwt"]})",
        R"({"x":{"typ":"at+jwt"}})",
        R"({"typ":null})",
        R"([{"typ":"at+jwt"}])",
        R"({"typ":"at+jwt"} x)",
        R"("at+jwt")",
        R"({"typ":"at+jwt",})",
        "{\"typ\":\"\xff\"}",
        R"({})",
    };
    const std::vector<std::string> payloads = {
        R"({"sub":"mch_1"})",
        R"({"sub":"user_1"})",
        R"({"sub":"mch_1","sub":"user_1"})",
        R"({"sub":"user_1","sub":"mch_1"})",
        R"({"sub":"mch_1","sub":7})",
        R"({"sub":7,"sub":"mch_1"})",
        R"({"sub":{"sub":"mch_1"}})",
        R"({"a":[{"sub":"mch_1"}],"b":1})",
        R"({"sub":["mch_1"]})",
        R"({"sub":"mch_1")",
        R"(null)",
        R"({"sub":"mch\u005f1"})",
        R"({})",
    };
    for (const auto& h : headers) {
        for (const auto& p : payloads) {
            INFO(h << " . " << p);
            token_type want = token_type::session_token;
            const auto status = oracle(h, p, want);
            const auto got = classify_token(b64url(h) + "." + b64url(p) + ".c2ln");
            REQUIRE(got.status == status);
            if (status == classify_status::ok) {
                CHECK(got.cls.type == want);
                CHECK(got.cls.format == token_format::jwt);
            }
        }
    }
}
