#include "clerk_knobs.hpp"

#include <stdexcept>

namespace clerk::it {

http_client::header_list bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
}

double metric(std::uint16_t admin_port, const std::string& series) {
    return scrape_metric(admin_port, series).value_or(0);
}

namespace {
void require_2xx(const std::string& what, const http_response& r) {
    if (r.status / 100 != 2) {
        throw std::runtime_error("emulator: " + what + " -> " + std::to_string(r.status) + " " +
                                 r.body);
    }
}
}  // namespace

clerk_knobs::json clerk_knobs::post(const std::string& path, const json& body,
                                    const http_client::header_list& extra) {
    http_client::header_list h{{"Content-Type", "application/json"}};
    h.insert(h.end(), extra.begin(), extra.end());
    http_client c(port_);
    const auto r = c.request("POST", path, h, body.dump());
    require_2xx("POST " + path, r);
    return json::parse(r.body);
}

clerk_knobs::json clerk_knobs::get(const std::string& path) {
    http_client c(port_);
    const auto r = c.get(path);
    require_2xx("GET " + path, r);
    return json::parse(r.body);
}

clerk_knobs::json clerk_knobs::mint(const std::string& machine_id, json extra) {
    extra["machine_id"] = machine_id;
    return post("/__emulator/tokens", extra);
}

std::string clerk_knobs::mint_token(const std::string& machine_id, json extra) {
    return mint(machine_id, std::move(extra))["token"].get<std::string>();
}

void clerk_knobs::revoke(const std::string& token_id) {
    post("/m2m_tokens/" + token_id + "/revoke", {{"revocation_reason", "compromised"}},
         {{"Authorization", std::string("Bearer ") + instance_key},
          {"Clerk-API-Version", "2026-05-12"}});
}

long clerk_knobs::verify_calls() {
    return get("/__emulator/stats")["verify_calls"].get<long>();
}

void clerk_knobs::reset_stats() {
    post("/__emulator/reset_stats", json::object());
}

void clerk_knobs::fail(long count, const std::string& mode, int status, int retry_after) {
    json b{{"count", count}, {"mode", mode}, {"status", status}, {"endpoint", "verify"}};
    if (retry_after >= 0) {
        b["retry_after"] = retry_after;
    }
    post("/__emulator/fail", b);
}

void clerk_knobs::latency(int ms) {
    post("/__emulator/latency", {{"ms", ms}});
}

}  // namespace clerk::it
