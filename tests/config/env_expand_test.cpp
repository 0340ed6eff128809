#include "config/env_expand.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

using clerk::config::env_lookup;
using clerk::config::expand_env;

namespace {

env_lookup fake_env(std::map<std::string, std::string, std::less<>> vars) {
    return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
        const auto it = vars.find(name);
        if (it == vars.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

env_lookup make_env() {
    return fake_env({{"HOST", "127.0.0.1"},
                     {"PORT", "3000"},
                     {"EMPTY", ""},
                     {"DOLLAR", "pa$${X}ss"},
                     {"_UNDER_1", "u"}});
}

struct expand_case {
    std::string_view text;
    std::string_view expected;
};

constexpr expand_case expand_cases[] = {
    {"", ""},
    {"plain", "plain"},
    {"${HOST}", "127.0.0.1"},
    {"http://${HOST}:${PORT}/x", "http://127.0.0.1:3000/x"},
    {"${_UNDER_1}", "u"},
    {"${MISSING:-fallback}", "fallback"},
    {"${MISSING:-}", ""},
    {"${EMPTY:-default}", "default"},  // an empty value counts as unset
    {"${HOST:-default}", "127.0.0.1"},
    {"${MISSING:-a:-b}", "a:-b"},  // the default is literal text up to '}'
    {"${MISSING:-http://h:1/p}", "http://h:1/p"},
    {"$$", "$"},
    {"$${HOST}", "${HOST}"},  // "$$" escapes the reference
    {"a$b", "a$b"},           // a lone '$' is literal
    {"end$", "end$"},
    {"${DOLLAR}", "pa$${X}ss"},  // values are not re-scanned
};

struct error_case {
    std::string_view text;
    std::vector<std::string> unset;
    bool syntax_error;
};

std::vector<error_case> error_cases() {
    return {
        {"${MISSING}", {"MISSING"}, false},
        {"${EMPTY}", {"EMPTY"}, false},
        {"${A}-${B}", {"A", "B"}, false},
        {"${HOST}${NOPE}", {"NOPE"}, false},
        {"${", {}, true},
        {"${HOST", {}, true},
        {"${}", {}, true},
        {"${1ABC}", {}, true},
        {"${A-B}", {}, true},
        {"${A:?err}", {}, true},
        {"${ HOST}", {}, true},
    };
}

}  // namespace

TEST_CASE("expand_env replaces variables and defaults", "[config][env]") {
    for (const auto& c : expand_cases) {
        INFO("text: " << c.text);
        const auto r = expand_env(c.text, make_env());
        CHECK(r.syntax_error.empty());
        CHECK(r.unset.empty());
        CHECK(r.value == c.expected);
    }
}

TEST_CASE("expand_env reports unset variables and bad references", "[config][env]") {
    for (const auto& c : error_cases()) {
        INFO("text: " << c.text);
        const auto r = expand_env(c.text, make_env());
        CHECK(r.unset == c.unset);
        CHECK(r.syntax_error.empty() == !c.syntax_error);
    }
}

TEST_CASE("expand_env names the reference in a syntax error", "[config][env]") {
    const auto r = expand_env("x ${A-B} y", make_env());
    CHECK(r.syntax_error.find("${A-B}") != std::string::npos);
    CHECK(expand_env("${HOST", make_env()).syntax_error.find("unterminated") != std::string::npos);
}

TEST_CASE("expand_env with no lookup treats every variable as unset", "[config][env]") {
    const auto r = expand_env("${HOST:-d}${X}", env_lookup{});
    CHECK(r.value == "d");
    CHECK(r.unset == std::vector<std::string>{"X"});
}
