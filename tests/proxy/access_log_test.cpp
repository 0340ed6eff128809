#include "proxy/access_log.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using clerk::proxy::access_record;

namespace {

access_record sample() {
    access_record r;
    r.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
    r.request_id = "rid";
    r.method = "GET";
    r.path = "/api/x";
    r.status = 200;
    r.duration_ms = 1.5;
    r.bytes = 42;
    r.token_type = clerk::core::token_type::m2m_token;
    r.subject = "mch_1";
    r.token_id = "mt_1";
    r.cache = clerk::core::cache_result::hit;
    r.upstream_ms = 0.25;
    r.protocol = "HTTP/2";
    return r;
}

}  // namespace

TEST_CASE("access log: JSON line has every field of docs/reference.md §8", "[access_log]") {
    const auto j = nlohmann::json::parse(clerk::proxy::format_access_json(sample()));
    CHECK(j["time"] == "2023-11-14T22:13:20.123Z");
    CHECK(j["request_id"] == "rid");
    CHECK(j["method"] == "GET");
    CHECK(j["path"] == "/api/x");
    CHECK(j["status"] == 200);
    CHECK(j["duration_ms"].get<double>() == Approx(1.5));
    CHECK(j["bytes"] == 42);
    CHECK(j["token_type"] == "m2m_token");
    CHECK(j["subject"] == "mch_1");
    CHECK(j["token_id"] == "mt_1");
    CHECK(j["cache"] == "hit");
    CHECK(j["upstream_ms"].get<double>() == Approx(0.25));
    CHECK(j["protocol"] == "HTTP/2");
    CHECK(j["logger"] == "access");
}

TEST_CASE("access log: absent values are null / none, client bytes are escaped", "[access_log]") {
    access_record r;
    r.request_id = "r";
    r.method = "G\"ET\n";
    r.path = "/a\x01";
    r.status = 401;
    const auto line = clerk::proxy::format_access_json(r);
    CHECK(line.find('\n') == std::string::npos);
    const auto j = nlohmann::json::parse(line);
    CHECK(j["method"] == "G\"ET\n");
    CHECK(j["path"] == "/a\x01");
    CHECK(j["token_type"].is_null());
    CHECK(j["subject"].is_null());
    CHECK(j["cache"] == "none");
    CHECK(j["upstream_ms"].is_null());
    CHECK(j["protocol"].is_null());
}

TEST_CASE("access log: text format is key=value on one line", "[access_log]") {
    const auto line = clerk::proxy::format_access_text(sample());
    CHECK(line.find("request_id=rid") != std::string::npos);
    CHECK(line.find("path=/api/x") != std::string::npos);
    CHECK(line.find("status=200") != std::string::npos);
    CHECK(line.find("cache=hit") != std::string::npos);
    CHECK(line.find("protocol=HTTP/2") != std::string::npos);
    CHECK(line.find('\n') == std::string::npos);
}
