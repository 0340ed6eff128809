#include "proxy/metrics.hpp"

#include <catch2/catch.hpp>

#include <string>

using clerk::proxy::metrics;

TEST_CASE("metrics: every family is rendered with HELP/TYPE even when zero", "[metrics]") {
    metrics m;
    const auto text = m.render();
    for (const char* name :
         {"clerk_proxy_requests_total", "clerk_proxy_auth_decisions_total",
          "clerk_proxy_cache_lookups_total", "clerk_proxy_cache_entries",
          "clerk_proxy_clerk_requests_total", "clerk_proxy_clerk_request_duration_seconds",
          "clerk_proxy_upstream_request_duration_seconds", "clerk_proxy_active_connections"}) {
        INFO(name);
        CHECK(text.find(std::string("# HELP ") + name + " ") != std::string::npos);
        CHECK(text.find(std::string("# TYPE ") + name + " ") != std::string::npos);
    }
    CHECK(text.find("clerk_proxy_cache_lookups_total{result=\"negative_hit\"} 0\n") !=
          std::string::npos);
    CHECK(text.find("clerk_proxy_auth_decisions_total{result=\"allow\"} 0\n") != std::string::npos);
    CHECK(text.find("clerk_proxy_upstream_request_duration_seconds_bucket{le=\"+Inf\"} 0\n") !=
          std::string::npos);
}

TEST_CASE("metrics: counters, gauges and histograms count", "[metrics]") {
    metrics m;
    m.request_done(200);
    m.request_done(200);
    m.request_done(401);
    m.auth_decision(clerk::core::decision_kind::missing_token);
    m.cache_lookup(clerk::core::cache_result::hit);
    m.clerk_request(0, 0.002);
    m.clerk_request(200, 0.02);
    m.upstream_duration(0.003);
    m.upstream_duration(20);
    m.connection_opened();
    m.connection_opened();
    m.connection_closed();
    m.set_cache_entries_source([] { return std::size_t{7}; });
    const auto text = m.render();
    CHECK(text.find("clerk_proxy_requests_total{code=\"200\"} 2\n") != std::string::npos);
    CHECK(text.find("clerk_proxy_requests_total{code=\"401\"} 1\n") != std::string::npos);
    CHECK(text.find("clerk_proxy_auth_decisions_total{result=\"missing_token\"} 1\n") !=
          std::string::npos);
    CHECK(text.find("clerk_proxy_cache_lookups_total{result=\"hit\"} 1\n") != std::string::npos);
    CHECK(text.find("clerk_proxy_cache_entries 7\n") != std::string::npos);
    CHECK(text.find("clerk_proxy_clerk_requests_total{status=\"error\"} 1\n") != std::string::npos);
    CHECK(text.find("clerk_proxy_clerk_requests_total{status=\"200\"} 1\n") != std::string::npos);
    CHECK(text.find("clerk_proxy_active_connections 1\n") != std::string::npos);
    // Cumulative buckets: 0.003 s falls in le=0.005; 20 s only in +Inf.
    CHECK(text.find("clerk_proxy_upstream_request_duration_seconds_bucket{le=\"0.0025\"} 0\n") !=
          std::string::npos);
    CHECK(text.find("clerk_proxy_upstream_request_duration_seconds_bucket{le=\"0.005\"} 1\n") !=
          std::string::npos);
    CHECK(text.find("clerk_proxy_upstream_request_duration_seconds_bucket{le=\"10\"} 1\n") !=
          std::string::npos);
    CHECK(text.find("clerk_proxy_upstream_request_duration_seconds_bucket{le=\"+Inf\"} 2\n") !=
          std::string::npos);
    CHECK(text.find("clerk_proxy_upstream_request_duration_seconds_count 2\n") !=
          std::string::npos);
    CHECK(text.find("clerk_proxy_upstream_request_duration_seconds_sum 20.003\n") !=
          std::string::npos);
}
