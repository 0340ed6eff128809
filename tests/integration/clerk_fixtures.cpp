// Shared fixtures of the Clerk verification suite (clerk_*_it.cpp): see the header.
#include "clerk_fixtures.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using json = nlohmann::json;

namespace clerk::it::clerk_fixtures {

std::string clerk_config(const std::string& upstream_url, const std::string& api_url,
                         const std::string& clerk_extra, const std::string& extra,
                         bool with_instance_key) {
    std::string y =
        "listen: \"127.0.0.1:0\"\n"
        "upstream:\n  url: \"" +
        upstream_url +
        "\"\n"
        "clerk:\n  api_url: \"" +
        api_url + "\"\n";
    if (with_instance_key) {
        y += std::string("  secret_key: \"") + instance_key + "\"\n";
    }
    y += clerk_extra;
    y += "admin:\n  listen: \"127.0.0.1:0\"\nthreads: 4\n";
    y += extra;
    return y;
}

std::string problem(const http_response& r, const std::string& error, const std::string& reason) {
    json b{{"error", error}, {"request_id", r.header("X-Request-Id")}};
    if (!reason.empty()) {
        b["reason"] = reason;
    }
    return b.dump();
}

void check_no_token_in(const std::string& output, const std::vector<std::string>& tokens) {
    for (const auto& t : tokens) {
        INFO("token leaked into the proxy's output");
        CHECK(output.find(t) == std::string::npos);
    }
}

clerk_env::clerk_env() : emu({"a", "b"}), knobs(emu.port()) {
    // "c" may call a and b: its tokens carry scopes [a, b].
    auto c =
        knobs.post("/__emulator/machines",
                   {{"name", "c"}, {"scopes", {emu.machines().at(0).id, emu.machines().at(1).id}}});
    c_id = c["id"].get<std::string>();
}

}  // namespace clerk::it::clerk_fixtures
