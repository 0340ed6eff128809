// TLS termination on the listener and https upstreams, with a CA generated at test time.
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace clerk::it;

namespace {

std::string https_upstream_config(const std::string& url, const std::string& upstream_extra) {
    return "listen: \"127.0.0.1:0\"\nupstream:\n  url: \"" + url + "\"\n" + upstream_extra +
           "clerk:\n  api_url: \"http://127.0.0.1:1\"\n  machine_secret_key: \"ak_test\"\n"
           "admin:\n  listen: \"\"\nroutes:\n  - path: /open/*\n    auth: none\n";
}

}  // namespace

TEST_CASE("TLS termination on the listener", "[it][tls]") {
    temp_dir dir;
    const auto pki = make_test_pki(dir, "listener-", {"localhost"}, {"127.0.0.1"});
    recording_upstream up;
    const std::string yaml = basic_config(
        up.url(), "", "tls:\n  cert_file: \"" + pki.cert + "\"\n  key_file: \"" + pki.key + "\"\n");
    proxy_process proxy(dir, yaml);
    http_client::options o;
    o.tls = true;
    o.ca_file = pki.ca_cert;
    http_client c(proxy.port(), o);
    const auto r = c.get("/open/secure");
    CHECK(r.status == 200);
    CHECK(c.get("/open/again").status == 200);  // keep-alive over TLS
    const auto refused = c.get("/api/x");
    CHECK(refused.status == 401);
    REQUIRE(up.wait_for_requests(2));
    CHECK(up.requests()[0].header("X-Forwarded-Proto") == "https");

    // A plain-text client gets nothing useful.
    http_client::options plain;
    plain.timeout = 3s;
    http_client p(proxy.port(), plain);
    p.send_raw("GET /open/x HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(p.closed_by_peer());
    CHECK(up.requests().size() == 2);
}

TEST_CASE("https upstream: verified by CA and host name", "[it][tls]") {
    temp_dir dir;
    SECTION("trusted CA, matching IP SAN") {
        const auto pki = make_test_pki(dir, "up-", {"localhost"}, {"127.0.0.1"});
        recording_upstream up({pki.cert, pki.key});
        proxy_process proxy(
            dir, https_upstream_config(up.url(), "  ca_file: \"" + pki.ca_cert + "\"\n"));
        http_client c(proxy.port());
        CHECK(c.get("/open/x").status == 200);
        CHECK(c.get("/open/y").status == 200);
        CHECK(up.connections_accepted() == 1);
    }
    SECTION("certificate for another host name: 502, never accepted") {
        const auto pki = make_test_pki(dir, "other-", {"other.example"});
        recording_upstream up({pki.cert, pki.key});
        proxy_process proxy(
            dir, https_upstream_config(up.url(), "  ca_file: \"" + pki.ca_cert + "\"\n"));
        http_client c(proxy.port());
        const auto r = c.get("/open/x");
        CHECK(r.status == 502);
        CHECK(nlohmann::json::parse(r.body)["error"] == "upstream_unavailable");
        CHECK(up.heads_received() == 0);
    }
    SECTION("untrusted CA: 502; tls_verify: false accepts it") {
        const auto pki = make_test_pki(dir, "untrusted-", {"localhost"}, {"127.0.0.1"});
        recording_upstream up({pki.cert, pki.key});
        {
            proxy_process proxy(dir, https_upstream_config(up.url(), ""));
            http_client c(proxy.port());
            CHECK(c.get("/open/x").status == 502);
            CHECK(up.heads_received() == 0);
        }
        proxy_process insecure(dir, https_upstream_config(up.url(), "  tls_verify: false\n"));
        http_client c(insecure.port());
        CHECK(c.get("/open/x").status == 200);
    }
}
