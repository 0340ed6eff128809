#pragma once
// Shared fixtures of the Clerk verification suite (clerk_it.cpp, clerk_failure_it.cpp,
// clerk_jwt_it.cpp).
//
// Clerk verification in the request path (issue #4) through the real binaries: the proxy, the
// Clerk emulator and a recording upstream, all on 127.0.0.1 port 0. Waits are conditions with
// deadlines; Clerk call counts come from the emulator's /__emulator/stats.
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include <string>
#include <vector>

namespace clerk::it::clerk_fixtures {

/// A proxy config pointing at `api_url` with the instance key; `clerk_extra` lines go into the
/// clerk section (indented by two spaces), `extra` is appended at top level.
std::string clerk_config(const std::string& upstream_url, const std::string& api_url,
                         const std::string& clerk_extra = {}, const std::string& extra = {},
                         bool with_instance_key = true);

/// The exact §6 body for a refusal, with the request id the proxy echoed.
std::string problem(const http_response& r, const std::string& error,
                    const std::string& reason = {});

void check_no_token_in(const std::string& output, const std::vector<std::string>& tokens);

/// The emulator with machines a and b, and c whose tokens carry scopes [a, b].
struct clerk_env {
    clerk_env();
    const emulator_process::machine& a() const { return emu.machines().at(0); }
    const emulator_process::machine& b() const { return emu.machines().at(1); }

    temp_dir dir;
    emulator_process emu;
    recording_upstream up;
    clerk_knobs knobs;
    std::string c_id;
};

}  // namespace clerk::it::clerk_fixtures
