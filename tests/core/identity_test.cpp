#include "core/identity.hpp"
#include "fakes/principal_edit.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using clerk::testing::edit;

namespace {

using clerk::core::compact_ascii_json;
using nlohmann::json;

bool is_header_safe_ascii(std::string_view s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f) {
            return false;
        }
    }
    return true;
}

struct render_case {
    std::string_view name;
    std::string_view input;  // JSON text
    std::string_view expected;
};

constexpr render_case render_cases[] = {
    {"empty object", R"({})", R"({})"},
    {"null", R"(null)", R"(null)"},
    {"compact, no spaces", R"({ "a" : 1 , "b" : [ 1, 2 ] })", R"({"a":1,"b":[1,2]})"},
    {"nested", R"({"o":{"k":true,"n":null}})", R"({"o":{"k":true,"n":null}})"},
    {"latin-1 escaped", "{\"name\":\"caf\xc3\xa9\"}", R"({"name":"caf\u00e9"})"},
    {"astral plane as surrogate pair", "{\"e\":\"\xf0\x9f\x98\x80\"}", R"({"e":"\ud83d\ude00"})"},
    {"CR LF escaped", R"({"v":"a\r\nX-Evil: 1"})", R"({"v":"a\r\nX-Evil: 1"})"},
    {"NUL escaped", R"({"v":"a\u0000b"})", R"({"v":"a\u0000b"})"},
};

}  // namespace

TEST_CASE("compact_ascii_json renders compact, ASCII-only JSON", "[identity]") {
    for (const auto& c : render_cases) {
        SECTION(std::string(c.name)) {
            const std::string out = compact_ascii_json(json::parse(c.input));
            CHECK(out == c.expected);
            CHECK(is_header_safe_ascii(out));
        }
    }
}

TEST_CASE("compact_ascii_json never throws on invalid UTF-8", "[identity]") {
    // Built programmatically: parse() would refuse these bytes, but a claims value assembled
    // from other sources could still hold them.
    const json j = {{"bad", std::string("a\xff\xfe"
                                        "b")},
                    {"cut", std::string("\xe2\x82")}};
    std::string out;
    REQUIRE_NOTHROW(out = compact_ascii_json(j));
    CHECK(is_header_safe_ascii(out));
    CHECK(out.find("\\ufffd") != std::string::npos);
}

TEST_CASE("compact_ascii_json refuses absurd nesting instead of recursing", "[identity]") {
    json deep = json::array();
    for (int i = 0; i < 10000; ++i) {
        deep = json::array({std::move(deep)});
    }
    std::string out = "unset";
    REQUIRE_NOTHROW(out = compact_ascii_json(deep));
    CHECK(out.empty());

    json shallow = json::array();
    for (int i = 0; i < 10; ++i) {
        shallow = json::array({std::move(shallow)});
    }
    CHECK(compact_ascii_json(shallow) == "[[[[[[[[[[[]]]]]]]]]]]");
}

TEST_CASE("identity::is_machine looks at the mch_ prefix only", "[identity]") {
    clerk::core::identity id;
    edit(id).subject = "mch_2abc";
    CHECK(id.who->is_machine());
    edit(id).subject = "user_2abc";
    CHECK_FALSE(id.who->is_machine());
    edit(id).subject = "xmch_2abc";
    CHECK_FALSE(id.who->is_machine());
    edit(id).subject = "";
    CHECK_FALSE(id.who->is_machine());
}
