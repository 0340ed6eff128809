// libFuzzer target: the YAML config loader (config/load.hpp), the control plane's only parser
// of operator input. Every `${VAR}` expands to one fixed value.
//
// Invariants: load_config_string never throws or crashes; ok() iff cfg is set; every error
// renders; the expanded value of a secret key never appears in an error message; a loaded
// config's route table and header names are usable by core (match_route, header_rules).
#include "config/load.hpp"
#include "core/header_rules.hpp"
#include "core/route.hpp"
#include "fuzz/fuzz_util.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

using clerk::fuzz::check;

// Looks like a machine secret key so that configs using ${CLERK_MACHINE_SECRET_KEY} load.
constexpr std::string_view env_value = "ak_fuzzenvsecret0123";
constexpr std::string_view env_marker = "fuzzenvsecret";

std::optional<std::string> fixed_env(std::string_view /*name*/) {
    return std::string(env_value);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in = clerk::fuzz::as_view(data, size);
    static const clerk::config::env_lookup env = fixed_env;

    clerk::config::load_result r;
    try {
        r = clerk::config::load_config_string(in, "fuzz.yaml", env);
    } catch (...) {
        check(false, "load_config_string never throws");
    }
    check(r.ok() == (r.cfg != nullptr), "ok() iff cfg is set");
    check(r.ok() == r.errors.empty(), "ok() iff there are no errors");

    const bool input_has_marker = in.find(env_marker) != std::string_view::npos;
    for (const auto& e : r.errors) {
        const std::string text = e.to_string();
        check(text.starts_with("fuzz.yaml:"), "an error names the file");
        check(e.line >= 0, "line is not negative");
        if (!input_has_marker && e.key.find("secret_key") != std::string::npos) {
            check(text.find(env_marker) == std::string::npos, "no secret in error messages");
        }
    }
    if (!r.ok()) {
        return 0;
    }

    // A valid config is usable as is by the data plane.
    const auto& cfg = *r.cfg;
    for (const auto& route : cfg.routes) {
        check(!route.path.empty(), "a route has a path");
        (void)clerk::core::match_route(cfg.routes, "GET", route.match.empty() ? "/" : route.match);
    }
    const clerk::core::header_rules rules(cfg.headers);
    check(rules.must_remove(cfg.headers.subject, {}) || cfg.headers.subject.empty(),
          "the subject header is stripped from requests");
    return 0;
}
