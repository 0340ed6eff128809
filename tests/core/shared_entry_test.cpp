#include "core/shared_entry.hpp"
#include "fakes/principal_edit.hpp"

#include <catch2/catch.hpp>

#include <openssl/sha.h>

#include <string>

using clerk::testing::edit;

using clerk::core::identity;
using clerk::core::shared_entry_codec;
using status = shared_entry_codec::decode_status;

namespace {

constexpr long long now = 1'800'000'000'000;

identity sample() {
    identity id;
    edit(id).subject = "mch_caller";
    id.token_id = "mt_123";
    edit(id).scopes = {"mch_a", "mch_b"};
    edit(id).claims = nlohmann::json{{"tenant", "t1"}};
    edit(id).claims_compact = R"({"tenant":"t1"})";
    id.expires_at_ms = now + 3'600'000;
    return id;
}

std::string hex_sha256(std::string_view s) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : d) {
        out += hex[c >> 4];
        out += hex[c & 0xf];
    }
    return out;
}

}  // namespace

TEST_CASE("shared entries: keys hold neither the token nor its plain SHA-256", "[shared]") {
    const shared_entry_codec c("ak_machine_key", "clerk-m2m-proxy:");
    const std::string token = "mt_0123456789abcdef0123456789abcdef";
    const auto key = c.key_for(token);
    CHECK(key.rfind("clerk-m2m-proxy:", 0) == 0);
    CHECK(key.size() == std::string("clerk-m2m-proxy:").size() + 64);
    CHECK(key.find(token) == std::string::npos);
    CHECK(key.find(hex_sha256(token)) == std::string::npos);
    CHECK(c.key_for(token) == key);        // stable across calls and processes
    CHECK(c.key_for(token + "x") != key);  // per token
    const shared_entry_codec other("ak_other_machine", "clerk-m2m-proxy:");
    CHECK(other.key_for(token) != key);  // another Clerk key: another namespace
}

TEST_CASE("shared entries: round trip, and only authentic unexpired values decode", "[shared]") {
    const shared_entry_codec c("ak_machine_key", "p:");
    const auto key = c.key_for("mt_token");
    const auto id = sample();

    SECTION("positive") {
        const auto v = c.encode_positive(key, id, now + 60'000);
        shared_entry_codec::entry e;
        REQUIRE(c.decode(key, v, now, e) == status::ok);
        REQUIRE(e.id);
        CHECK(e.id->who->subject == id.who->subject);
        CHECK(e.id->token_id == id.token_id);
        CHECK(e.id->who->scopes == id.who->scopes);
        CHECK(e.id->who->claims == id.who->claims);
        CHECK(e.id->who->claims_compact == id.who->claims_compact);
        CHECK(e.id->expires_at_ms == id.expires_at_ms);
        CHECK_FALSE(e.id->who->audience);
        CHECK(e.until_ms == now + 60'000);
        CHECK(c.decode(key, v, now + 60'000, e) == status::expired);
    }
    SECTION("negative, with a reason kept as a static string") {
        const auto v = c.encode_negative(key, "revoked", now + 10'000);
        shared_entry_codec::entry e;
        REQUIRE(c.decode(key, v, now, e) == status::ok);
        CHECK_FALSE(e.id);
        CHECK(e.negative_reason == "revoked");
    }
    SECTION("forged, altered, moved or foreign values are bad_mac") {
        const auto v = c.encode_positive(key, id, now + 60'000);
        shared_entry_codec::entry e;
        std::string altered = v;
        altered.replace(altered.find("mch_caller"), 10, "mch_attack");
        CHECK(c.decode(key, altered, now, e) == status::bad_mac);
        CHECK(c.decode(c.key_for("mt_other"), v, now, e) == status::bad_mac);  // moved
        const shared_entry_codec foreign("ak_other_machine", "p:");
        CHECK(foreign.decode(key, v, now, e) == status::bad_mac);
        CHECK(c.decode(key, "", now, e) == status::bad_mac);
        CHECK(c.decode(key, std::string(64, '0') + R"({"v":"v1"})", now, e) == status::bad_mac);
        CHECK_FALSE(e.id);
    }
    SECTION("an authentic payload of another shape is malformed, never an exception") {
        shared_entry_codec::entry e;
        for (const char* payload :
             {R"({"v":44444})", R"([1,2])", R"({"v":"v1","until":"soon"})",
              R"({"v":"v1","until":1900000000000,"type":7,"sub":"mch_a","tid":"t","scopes":[]})",
              R"({"v":"v1","until":1900000000000,"reason":5})", "not json"}) {
            INFO(payload);
            CHECK(c.decode(key, c.seal(key, payload), now, e) == status::malformed);
            CHECK_FALSE(e.id);
        }
    }
    SECTION("an expired token is never served, whatever the entry says") {
        auto short_lived = id;
        short_lived.expires_at_ms = now - 1;
        const auto v = c.encode_positive(key, short_lived, now + 60'000);
        shared_entry_codec::entry e;
        CHECK(c.decode(key, v, now, e) == status::expired);
    }
}
