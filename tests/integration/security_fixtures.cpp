// Shared fixtures of the security regression suite (security_*_it.cpp): see the header.
#include "security_fixtures.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

using json = nlohmann::json;

namespace clerk::it::security_fixtures {

namespace {

/// A header name as WSGI/CGI-style upstreams see it: lower case, '_' read as '-'.
std::string cgi_name(std::string s) {
    s = lower(std::move(s));
    std::replace(s.begin(), s.end(), '_', '-');
    return s;
}

}  // namespace

json body_json(const http_response& r) {
    try {
        return json::parse(r.body);
    } catch (const std::exception&) {
        return json::object();
    }
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::vector<std::string> identity_like(const recorded_request& seen) {
    std::vector<std::string> out;
    for (const auto& [k, v] : seen.headers) {
        const auto n = cgi_name(k);
        if (n.rfind("x-clerk-", 0) == 0 || n == "x-tenant-id") {
            out.push_back(k + ": " + v);
        }
    }
    return out;
}

std::string sec_config(const std::string& upstream_url, const std::string& api_url,
                       const std::string& admin_scope, const std::string& extra) {
    std::string y = "listen: \"127.0.0.1:0\"\n";
    y += "upstream:\n  url: \"" + upstream_url + "\"\n  timeout: 10s\n";
    y += "clerk:\n  api_url: \"" + (api_url.empty() ? std::string("http://127.0.0.1:1") : api_url) +
         "\"\n  secret_key: \"" + instance_key + "\"\n  timeout: 1s\n  retries: 0\n";
    y += "admin:\n  listen: \"127.0.0.1:0\"\n";
    y += "headers:\n  claims_to_headers:\n    tenant: X-Tenant-Id\n";
    y += "routes:\n  - path: /public/*\n    auth: none\n  - path: /admin/*\n    require_scopes: [" +
         admin_scope + "]\n";
    y += extra;
    return y;
}

clerk_env::clerk_env() : emu({"a", "b"}), knobs(emu.port()) {
    auto c =
        knobs.post("/__emulator/machines",
                   {{"name", "c"}, {"scopes", {emu.machines().at(0).id, emu.machines().at(1).id}}});
    c_id = c["id"].get<std::string>();
    auto lonely =
        knobs.post("/__emulator/machines", {{"name", "lonely"}, {"scopes", json::array()}});
    lonely_id = lonely["id"].get<std::string>();
}

std::string clerk_env::config(const std::string& extra) const {
    return sec_config(up.url(), emu.url(), a_id(), extra);
}

http_client::options short_timeout() {
    http_client::options o;
    o.timeout = 5s;
    return o;
}

http_response raw_exchange(std::uint16_t port, const std::string& bytes) {
    http_client c(port, short_timeout());
    c.send_raw(bytes);
    return c.read_response();
}

void check_refused_and_closed(http_client& c, const std::string& bytes) {
    c.send_raw(bytes);
    const auto r = c.read_response();
    INFO(r.body);
    CHECK(r.status == 400);
    CHECK(body_json(r)["error"] == "bad_request");
    CHECK(r.header("Content-Type") == "application/json");
    CHECK_FALSE(r.keep_alive);
    CHECK(c.closed_by_peer());
}

void check_only_sentinel_forwarded(const proxy_process& proxy, const recording_upstream& up) {
    http_client s(proxy.port(), short_timeout());
    CHECK(s.get("/public/sentinel").status == 200);
    REQUIRE(up.wait_for_requests(1));
    const auto seen = up.requests();
    CHECK(seen.size() == 1);
    CHECK(seen.at(0).target == "/public/sentinel");
    CHECK(up.heads_received() == 1);
}

}  // namespace clerk::it::security_fixtures
