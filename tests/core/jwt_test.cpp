#include "core/jwt.hpp"

#include "fakes/jwt_minter.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;
using clerk::core::jwt_key_set;
using clerk::core::sys_time;
using clerk::core::verify_m2m_jwt;
namespace reason = clerk::core::jwt_reason;
using clerk::testing::jwt_minter;
using nlohmann::json;

// Fixed wall clock: the SDK fixture's iat (docs/clerk-protocol.md §4.3). Skew: the SDK default.
constexpr long long now_s = 1753743316;
constexpr sys_time now{std::chrono::seconds(now_s)};
constexpr auto skew = 5000ms;

constexpr std::string_view kid_any = "ins_any";      // JWK without alg: any RS*
constexpr std::string_view kid_rs256 = "ins_rs256";  // same key, JWK pinned to RS256

const jwt_minter& signer() {
    return jwt_minter::shared(0);
}
const jwt_minter& other_signer() {
    return jwt_minter::shared(1);
}

// A JWKS holding signer()'s key twice (two kids, one alg-pinned) plus entries to be skipped.
const jwt_key_set& table_keys() {
    static const auto keys = [] {
        json doc = {{"keys",
                     {signer().jwk(kid_any, ""),
                      signer().jwk(kid_rs256, "RS256"),
                      {{"kty", "EC"}, {"kid", "ins_ec"}, {"crv", "P-256"}, {"x", "AA"}}}}};
        std::string error;
        auto set = jwt_key_set::from_jwks_json(doc.dump(), error);
        REQUIRE(set);
        return set;
    }();
    return *keys;
}

json header(std::string_view alg = "RS256", std::string_view kid = kid_any) {
    return {{"alg", std::string(alg)}, {"typ", "JWT"}, {"kid", std::string(kid)}};
}

json claims() {
    return jwt_minter::m2m_claims(now_s);
}

json with(json j, const char* name, json value) {
    j[name] = std::move(value);
    return j;
}

json without(json j, const char* name) {
    j.erase(name);
    return j;
}

std::string mint(const json& h, const json& p) {
    return signer().mint(h, p);
}

// Replaces the payload part of a signed token (the signature no longer matches).
std::string swap_payload(const std::string& token, const json& payload) {
    const auto d1 = token.find('.');
    const auto d2 = token.find('.', d1 + 1);
    return token.substr(0, d1 + 1) + jwt_minter::b64url(payload.dump()) + token.substr(d2);
}

std::string signature_of(const std::string& token) {
    return token.substr(token.rfind('.') + 1);
}

struct token_case {
    std::string_view name;
    std::string (*make)();
    std::string_view expected;  // "" = accepted
};

// clang-format off
constexpr token_case token_cases[] = {
    // Accepted.
    {"valid RS256", [] { return mint(header("RS256"), claims()); }, ""},
    {"valid RS384", [] { return mint(header("RS384"), claims()); }, ""},
    {"valid RS512", [] { return mint(header("RS512"), claims()); }, ""},
    {"valid RS256 against an RS256-pinned JWK", [] { return mint(header("RS256", kid_rs256), claims()); }, ""},
    {"typ absent", [] { return mint(without(header(), "typ"), claims()); }, ""},
    {"cat of an M2M token", [] { return mint(with(header(), "cat", "cl_B7d4PD333AAA"), claims()); }, ""},
    {"expired within skew", [] { return mint(header(), with(claims(), "exp", now_s - 3)); }, ""},
    {"nbf in future within skew", [] { return mint(header(), with(claims(), "nbf", now_s + 3)); }, ""},
    {"exp as a fraction", [] { return mint(header(), with(claims(), "exp", now_s + 0.5)); }, ""},
    {"no optional claims", [] { return mint(header(), json{{"sub", "mch_1"}, {"exp", now_s + 60}}); }, ""},
    // Algorithm confusion and unsigned tokens.
    {"HS256 signed with the public key PEM", [] {
        return jwt_minter::hmac_sign(header("HS256").dump(), claims().dump(), signer().public_pem()); },
        reason::alg_not_allowed},
    {"alg none, empty signature", [] {
        return jwt_minter::unsigned_token(header("none").dump(), claims().dump()); },
        reason::alg_not_allowed},
    {"alg none, RSA signature", [] { return mint(header("none"), claims()); }, reason::alg_not_allowed},
    {"alg ES256", [] { return mint(header("ES256"), claims()); }, reason::alg_not_allowed},
    {"alg PS256", [] { return mint(header("PS256"), claims()); }, reason::alg_not_allowed},
    {"alg rs256 (case)", [] { return mint(header("rs256"), claims()); }, reason::alg_not_allowed},
    {"alg missing", [] { return mint(without(header(), "alg"), claims()); }, reason::alg_not_allowed},
    {"alg not a string", [] { return mint(with(header(), "alg", json::array({"RS256"})), claims()); },
        reason::alg_not_allowed},
    {"RS512 against an RS256-pinned JWK", [] { return mint(header("RS512", kid_rs256), claims()); },
        reason::alg_mismatch},
    // Signatures.
    {"wrong key", [] { return other_signer().mint(header(), claims()); }, reason::bad_signature},
    {"altered payload (sub changed after signing)", [] {
        return swap_payload(mint(header(), claims()), with(claims(), "sub", "mch_evil")); },
        reason::bad_signature},
    {"signature of another token", [] {
        const auto a = mint(header(), claims());
        const auto b = mint(header(), with(claims(), "jti", "mt_other"));
        return a.substr(0, a.rfind('.') + 1) + signature_of(b); },
        reason::bad_signature},
    {"signature one byte short", [] {
        const auto t = mint(header(), claims());
        return t.substr(0, t.rfind('.') + 1) + jwt_minter::b64url(std::string(255, 'x')); },
        reason::bad_signature},
    {"signature with non-canonical trailing bits", [] {
        // 256 bytes -> 342 chars; the last one holds 2 data bits and 4 zero bits: 'B' sets one.
        auto t = mint(header(), claims());
        t.back() = 'B';
        return t; },
        reason::malformed},
    {"stripped signature", [] {
        const auto t = mint(header(), claims());
        return t.substr(0, t.rfind('.') + 1); },
        reason::malformed},
    // Header rules.
    {"typ at+jwt", [] { return mint(with(header(), "typ", "at+jwt"), claims()); }, reason::invalid_typ},
    {"typ jwt (case)", [] { return mint(with(header(), "typ", "jwt"), claims()); }, reason::invalid_typ},
    {"cat of a session token", [] { return mint(with(header(), "cat", "cl_B7d4PD111AAA"), claims()); },
        reason::invalid_category},
    {"unknown kid", [] { return mint(header("RS256", "ins_nope"), claims()); }, reason::unknown_kid},
    {"kid absent", [] { return mint(without(header(), "kid"), claims()); }, reason::unknown_kid},
    {"crit header parameter", [] { return mint(with(header(), "crit", {"exp"}), claims()); }, reason::malformed},
    {"embedded jwk header is ignored (wrong key still fails)", [] {
        return other_signer().mint(with(header(), "jwk", other_signer().jwk("x")), claims()); },
        reason::bad_signature},
    {"kid not a string", [] { return mint(with(header(), "kid", 7), claims()); }, reason::malformed},
    // Time claims (signed, so only the rules can refuse them).
    {"expired beyond skew", [] { return mint(header(), with(claims(), "exp", now_s - 10)); }, reason::expired},
    {"exp exactly at now - skew", [] { return mint(header(), with(claims(), "exp", now_s - 5)); }, reason::expired},
    {"missing exp", [] { return mint(header(), without(claims(), "exp")); }, reason::missing_exp},
    {"exp as a string", [] {
        return mint(header(), with(claims(), "exp", std::to_string(now_s + 60))); }, reason::missing_exp},
    {"nbf in future beyond skew", [] { return mint(header(), with(claims(), "nbf", now_s + 10)); },
        reason::not_yet_valid},
    {"nbf not a number", [] { return mint(header(), with(claims(), "nbf", "soon")); }, reason::malformed},
    {"iat in future beyond skew", [] { return mint(header(), with(claims(), "iat", now_s + 10)); },
        reason::issued_in_future},
    {"exp out of double range", [] {
        return signer().sign(header().dump(), R"({"sub":"mch_1","exp":1e999})"); }, reason::malformed},
    // Subject.
    {"sub of a user (session token)", [] { return mint(header(), with(claims(), "sub", "user_2abc")); },
        reason::not_m2m},
    {"sub missing", [] { return mint(header(), without(claims(), "sub")); }, reason::not_m2m},
    {"sub not a string", [] { return mint(header(), with(claims(), "sub", 1)); }, reason::not_m2m},
    // Structure.
    {"empty token", [] { return std::string(); }, reason::malformed},
    {"two parts", [] { const auto t = mint(header(), claims()); return t.substr(0, t.rfind('.')); },
        reason::malformed},
    {"four parts", [] { return mint(header(), claims()) + ".AAAA"; }, reason::malformed},
    {"padded signature", [] { return mint(header(), claims()) + "=="; }, reason::malformed},
    {"standard base64 alphabet", [] { return std::string("eyJ+.eyJ/.AAAA"); }, reason::malformed},
    {"empty header part", [] { const auto t = mint(header(), claims()); return t.substr(t.find('.')); },
        reason::malformed},
    {"header is an array", [] { return signer().sign("[1]", claims().dump()); }, reason::malformed},
    {"header is not JSON", [] { return signer().sign("{alg:RS256}", claims().dump()); }, reason::malformed},
    {"duplicate alg in header", [] {
        return signer().sign(R"({"alg":"RS256","kid":"ins_any","alg":"none"})", claims().dump()); },
        reason::malformed},
    {"duplicate sub in payload (signed)", [] {
        return signer().sign(header().dump(), R"({"sub":"mch_a","exp":9999999999,"sub":"mch_b"})"); },
        reason::malformed},
    {"payload is an array (signed)", [] { return signer().sign(header().dump(), "[]"); }, reason::malformed},
    {"payload with trailing garbage (signed)", [] {
        return signer().sign(header().dump(), claims().dump() + "x"); }, reason::malformed},
    {"scopes not a string", [] { return mint(header(), with(claims(), "scopes", json::array({"a"}))); },
        reason::malformed},
    {"jti not a string", [] { return mint(header(), with(claims(), "jti", 5)); }, reason::malformed},
};
// clang-format on

}  // namespace

TEST_CASE("verify_m2m_jwt: table of good and forged tokens", "[jwt]") {
    for (const auto& c : token_cases) {
        INFO(c.name);
        const std::string token = c.make();
        const auto r = verify_m2m_jwt(token, table_keys(), now, skew);
        CHECK(r.reason == c.expected);
        CHECK(r.ok == c.expected.empty());
        CHECK((r.id != nullptr) == r.ok);
    }
}

TEST_CASE("verify_m2m_jwt: the result carries the header kid", "[jwt]") {
    CHECK(
        verify_m2m_jwt(mint(header("RS256", "ins_nope"), claims()), table_keys(), now, skew).kid ==
        "ins_nope");
    CHECK(verify_m2m_jwt(mint(header(), claims()), table_keys(), now, skew).kid == kid_any);
}

TEST_CASE("verify_m2m_jwt: skew is honoured in both directions", "[jwt]") {
    const auto token = mint(header(), with(claims(), "exp", now_s + 1));
    CHECK(verify_m2m_jwt(token, table_keys(), now, skew).ok);
    CHECK(verify_m2m_jwt(token, table_keys(), now + 5s, skew).ok);
    CHECK(verify_m2m_jwt(token, table_keys(), now + 6s, skew).reason == reason::expired);
    CHECK(verify_m2m_jwt(token, table_keys(), now + 2s, 0ms).reason == reason::expired);
}

TEST_CASE("verify_m2m_jwt: identity mapping", "[jwt]") {
    using clerk::core::token_format;
    using clerk::core::token_type;

    SECTION("SDK fixture: jti, sub, scopes from `scopes`, claims without registered ones") {
        const auto r = verify_m2m_jwt(mint(header(), with(claims(), "custom", "hello")),
                                      table_keys(), now, skew);
        REQUIRE(r.ok);
        const auto& id = *r.id;
        CHECK(id.type == token_type::m2m_token);
        CHECK(id.format == token_format::jwt);
        CHECK(id.token_id == "mt_2xyz");
        CHECK(id.who->subject == "mch_2abc");
        CHECK(id.who->scopes == std::vector<std::string>{"mch_2def", "mch_2ghi"});
        CHECK(id.who->claims == json{{"custom", "hello"}});
        CHECK(id.who->claims_compact == R"({"custom":"hello"})");
        REQUIRE(id.expires_at_ms);
        CHECK(*id.expires_at_ms == (now_s + 3600) * 1000);
    }
    SECTION("scopes fall back to aud (array)") {
        const auto r = verify_m2m_jwt(
            mint(header(), with(without(claims(), "scopes"), "aud", {"mch_x", "mch_y"})),
            table_keys(), now, skew);
        REQUIRE(r.ok);
        CHECK(r.id->who->scopes == std::vector<std::string>{"mch_x", "mch_y"});
    }
    SECTION("scopes fall back to aud (string)") {
        const auto r =
            verify_m2m_jwt(mint(header(), with(without(claims(), "scopes"), "aud", "mch_x")),
                           table_keys(), now, skew);
        REQUIRE(r.ok);
        CHECK(r.id->who->scopes == std::vector<std::string>{"mch_x"});
    }
    SECTION("no scopes and no aud: [], no jti: \"\", nothing left: claims null") {
        const auto r = verify_m2m_jwt(mint(header(), json{{"sub", "mch_1"}, {"exp", now_s + 60}}),
                                      table_keys(), now, skew);
        REQUIRE(r.ok);
        CHECK(r.id->who->scopes.empty());
        CHECK(r.id->token_id.empty());
        CHECK(r.id->who->claims.is_null());
        CHECK(r.id->who->claims_compact.empty());
    }
    SECTION("scopes: repeated spaces give no empty items; azp and custom claims are kept") {
        const auto p = with(with(with(claims(), "scopes", " a  b "), "azp", "x"), "n", {{"k", 1}});
        const auto r = verify_m2m_jwt(mint(header(), p), table_keys(), now, skew);
        REQUIRE(r.ok);
        CHECK(r.id->who->scopes == std::vector<std::string>{"a", "b"});
        CHECK(r.id->who->claims_compact == R"({"azp":"x","n":{"k":1}})");
    }
    SECTION("non-ASCII claims are rendered header-safe") {
        const auto r = verify_m2m_jwt(mint(header(), with(claims(), "who", "caf\xc3\xa9")),
                                      table_keys(), now, skew);
        REQUIRE(r.ok);
        CHECK(r.id->who->claims_compact == R"({"who":"caf\u00e9"})");
    }
}

TEST_CASE("verify_m2m_jwt: aud shapes and recipient scoping", "[jwt][audience]") {
    using clerk::core::audience_allows;
    const std::vector<std::string> us{"mch_us"};
    const auto verify_aud = [](json aud) {
        return verify_m2m_jwt(mint(header(), with(claims(), "aud", std::move(aud))), table_keys(),
                              now, skew);
    };
    SECTION("an array naming us passes; naming only another machine fails") {
        const auto ok = verify_aud({"mch_other", "mch_us"});
        REQUIRE(ok.ok);
        CHECK(*ok.id->who->audience == std::vector<std::string>{"mch_other", "mch_us"});
        CHECK(audience_allows(*ok.id, us));
        const auto other = verify_aud({"mch_other"});
        REQUIRE(other.ok);
        CHECK_FALSE(audience_allows(*other.id, us));
        CHECK(audience_allows(*other.id, {"mch_x", "mch_other"}));  // any overlap
    }
    SECTION("a string aud") {
        const auto r = verify_aud("mch_us");
        REQUIRE(r.ok);
        CHECK(audience_allows(*r.id, us));
        CHECK_FALSE(audience_allows(*verify_aud("mch_usX").id, us));  // exact, not prefix
    }
    SECTION("no aud, null aud, empty array: verified, but no configured audience is met") {
        for (const auto& r :
             {verify_m2m_jwt(mint(header(), without(claims(), "aud")), table_keys(), now, skew),
              verify_aud(nullptr), verify_aud(json::array())}) {
            REQUIRE(r.ok);
            REQUIRE(r.id->who->audience);
            CHECK(r.id->who->audience->empty());
            CHECK_FALSE(audience_allows(*r.id, us));
            CHECK(audience_allows(*r.id, {}));  // not configured: not checked
        }
    }
    SECTION("aud of another shape is malformed even when scopes are present") {
        for (const json& bad : {json(7), json({{"a", 1}}), json({"mch_us", 1}), json(true),
                                json({json::array({"mch_us"})})}) {
            INFO(bad.dump());
            CHECK(verify_aud(bad).reason == reason::malformed);
        }
    }
    SECTION("an identity Clerk verified with our key carries no audience to check") {
        clerk::core::identity opaque;
        CHECK(audience_allows(opaque, us));
    }
}

TEST_CASE("jwt_key_set::from_jwks_json", "[jwt][jwks]") {
    std::string error;
    SECTION("good set with two keys") {
        const json doc = {{"keys", {signer().jwk("ins_a"), other_signer().jwk("ins_b", "RS512")}}};
        const auto set = jwt_key_set::from_jwks_json(doc.dump(), error);
        REQUIRE(set);
        CHECK(set->size() == 2);
        CHECK(set->kids() == std::vector<std::string>{"ins_a", "ins_b"});
        CHECK_FALSE(set->matches_any_kid());
        REQUIRE(set->find("ins_b"));
        CHECK(set->find("ins_b")->alg() == "RS512");
        CHECK(set->find("ins_b")->bits() == 2048);
        CHECK(set->find("ins_c") == nullptr);
        CHECK(verify_m2m_jwt(mint(header("RS256", "ins_a"), claims()), *set, now, skew).ok);
        CHECK(
            verify_m2m_jwt(other_signer().mint(header("RS512", "ins_b"), claims()), *set, now, skew)
                .ok);
        // Signed by key a, labelled b: the kid selects the key, so the signature fails.
        CHECK(verify_m2m_jwt(mint(header("RS512", "ins_b"), claims()), *set, now, skew).reason ==
              reason::bad_signature);
    }
    SECTION("unusable entries are skipped") {
        const json doc = {{"keys",
                           {without(signer().jwk("no_n"), "n"),
                            {{"kty", "EC"}, {"kid", "ins_ec"}, {"crv", "P-256"}},
                            with(signer().jwk("enc"), "use", "enc"),
                            with(signer().jwk("ps"), "alg", "PS256"),
                            with(signer().jwk("bad_n"), "n", "!!"),
                            without(signer().jwk(""), "kid"),
                            with(signer().jwk("tiny"), "n", jwt_minter::b64url("\xC3\x01")),
                            "not an object",
                            signer().jwk("ins_ok")}}};
        const auto set = jwt_key_set::from_jwks_json(doc.dump(), error);
        REQUIRE(set);
        CHECK(set->kids() == std::vector<std::string>{"ins_ok"});
    }
    SECTION("errors") {
        const json only_unusable = {{"keys", {without(signer().jwk("a"), "n")}}};
        const std::pair<std::string, std::string_view> bad[] = {
            {R"({"keys":[]})", "no signing keys"},
            {only_unusable.dump(), "no signing keys"},
            {"{\"keys\":", "invalid JSON"},
            {"garbage", "invalid JSON"},
            {"", "invalid JSON"},
            {R"({"keys":[],"keys":[]})", "invalid JSON"},
            {"[]", "invalid JSON"},
            {R"({"keys":{}})", "JWKS is not an object with a keys array"},
            {R"({})", "JWKS is not an object with a keys array"},
        };
        for (const auto& [text, message] : bad) {
            INFO(text);
            error.clear();
            CHECK(jwt_key_set::from_jwks_json(text, error) == nullptr);
            CHECK(error == message);
        }
    }
}

TEST_CASE("jwt_key_set::from_pem", "[jwt][pem]") {
    std::string error;
    SECTION("SPKI key verifies a token with any kid, or none") {
        const auto set = jwt_key_set::from_pem(signer().public_pem(), error);
        REQUIRE(set);
        CHECK(set->size() == 1);
        CHECK(set->matches_any_kid());
        CHECK(set->kids() == std::vector<std::string>{""});
        CHECK(verify_m2m_jwt(mint(header("RS256", "ins_whatever"), claims()), *set, now, skew).ok);
        CHECK(verify_m2m_jwt(mint(header("RS512", "x"), claims()), *set, now, skew).ok);
        CHECK(verify_m2m_jwt(mint(without(header(), "kid"), claims()), *set, now, skew).ok);
        CHECK(verify_m2m_jwt(other_signer().mint(header(), claims()), *set, now, skew).reason ==
              reason::bad_signature);
    }
    SECTION("PKCS#1 key") {
        const std::string pem = signer().public_pem_pkcs1();
        REQUIRE(pem.find("BEGIN RSA PUBLIC KEY") != std::string::npos);
        const auto set = jwt_key_set::from_pem(pem, error);
        REQUIRE(set);
        CHECK(verify_m2m_jwt(mint(header(), claims()), *set, now, skew).ok);
    }
    SECTION("pasted forms: literal \\n escapes, single line") {
        std::string escaped;
        std::string one_line;
        for (const char c : signer().public_pem()) {
            escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
            one_line += c == '\n' ? "" : std::string(1, c);
        }
        for (const auto& pem : {escaped, one_line}) {
            const auto set = jwt_key_set::from_pem(pem, error);
            REQUIRE(set);
            CHECK(verify_m2m_jwt(mint(header(), claims()), *set, now, skew).ok);
        }
    }
    SECTION("refused") {
        const std::string pem = signer().public_pem();
        const std::string no_end = pem.substr(0, pem.find("-----END"));
        std::string corrupt = pem;
        corrupt[40] = '*';
        const std::string garbage_body =
            "-----BEGIN PUBLIC KEY-----\nQUFBQQ==\n-----END PUBLIC KEY-----\n";
        const std::string private_label =
            "-----BEGIN PRIVATE KEY-----\nQUFBQQ==\n-----END PRIVATE KEY-----\n";
        for (const auto& text : {std::string(), std::string("garbage"), no_end, corrupt,
                                 garbage_body, private_label}) {
            INFO(text);
            error.clear();
            CHECK(jwt_key_set::from_pem(text, error) == nullptr);
            CHECK_FALSE(error.empty());
        }
    }
}

TEST_CASE("verify_m2m_jwt: hostile input never throws", "[jwt]") {
    const std::string deep_header = std::string(200, '[') + std::string(200, ']');
    const std::string inputs[] = {
        ".",
        "..",
        "...",
        std::string(10000, 'A'),
        jwt_minter::b64url(deep_header) + ".e30.AAAA",
        jwt_minter::b64url("{\"alg\":\"RS256\",\"kid\":\"\xff\"}") + ".e30.AAAA",
        signer().sign(header().dump(), "{\"sub\":\"mch_1\",\"exp\":9e18,\"x\":" +
                                           std::string(100, '[') + std::string(100, ']') + "}"),
    };
    for (const auto& token : inputs) {
        INFO(token.substr(0, 80));
        const auto r = verify_m2m_jwt(token, table_keys(), now, skew);
        CHECK_FALSE(r.ok);
        CHECK(r.reason == reason::malformed);
    }
}
