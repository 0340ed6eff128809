#include "proxy/admin.hpp"

#include "proxy/metrics.hpp"

#include <catch2/catch.hpp>

using clerk::proxy::admin_route;
using clerk::proxy::admin_state;

TEST_CASE("admin: healthz, readyz and metrics", "[admin]") {
    clerk::proxy::metrics m;
    admin_state st;
    st.m = &m;
    CHECK(admin_route("GET", "/healthz", st).status == 200);
    CHECK(admin_route("GET", "/healthz", st).body == "ok\n");
    CHECK(admin_route("GET", "/readyz", st).status == 503);
    st.ready = true;
    CHECK(admin_route("GET", "/readyz", st).status == 200);
    CHECK(admin_route("HEAD", "/readyz?x=1", st).status == 200);
    const auto metrics = admin_route("GET", "/metrics", st);
    CHECK(metrics.status == 200);
    CHECK(metrics.content_type == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(metrics.body.find("clerk_proxy_active_connections") != std::string::npos);
    CHECK(admin_route("GET", "/nope", st).status == 404);
    CHECK(admin_route("POST", "/healthz", st).status == 405);
}
