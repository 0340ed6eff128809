// Process lifecycle through the real binary: admin endpoints, metrics, access log, SIGTERM
// drain, SIGHUP reload, bind failure.
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

using namespace clerk::it;

TEST_CASE("admin: healthz, readyz, metrics with every metric name", "[it][admin]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    REQUIRE(proxy.admin_port() != 0);
    http_client main(proxy.port());
    CHECK(main.get("/api/x").status == 401);
    CHECK(main.get("/open/x").status == 200);

    // A request is counted when its exchange ends, just after its response was written (on the
    // connection's event loop): wait for both counts before reading the whole page.
    CHECK(eventually([&] {
        return scrape_metric(proxy.admin_port(), "clerk_proxy_requests_total{code=\"200\"}") ==
                   1.0 &&
               scrape_metric(proxy.admin_port(), "clerk_proxy_requests_total{code=\"401\"}") == 1.0;
    }));
    http_client admin(proxy.admin_port());
    const auto h = admin.get("/healthz");
    CHECK(h.status == 200);
    CHECK(h.body == "ok\n");
    CHECK(admin.get("/readyz").status == 200);
    CHECK(admin.get("/nope").status == 404);
    const auto m = admin.get("/metrics");
    CHECK(m.status == 200);
    CHECK(m.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
    for (const char* name :
         {"clerk_proxy_requests_total", "clerk_proxy_auth_decisions_total",
          "clerk_proxy_cache_lookups_total", "clerk_proxy_cache_entries",
          "clerk_proxy_clerk_requests_total", "clerk_proxy_clerk_request_duration_seconds_bucket",
          "clerk_proxy_upstream_request_duration_seconds_bucket",
          "clerk_proxy_active_connections"}) {
        INFO(name);
        CHECK(m.body.find(name) != std::string::npos);
    }
    CHECK(m.body.find("clerk_proxy_requests_total{code=\"401\"} 1\n") != std::string::npos);
    CHECK(m.body.find("clerk_proxy_requests_total{code=\"200\"} 1\n") != std::string::npos);
    CHECK(m.body.find("clerk_proxy_auth_decisions_total{result=\"missing_token\"} 1\n") !=
          std::string::npos);
    CHECK(m.body.find("clerk_proxy_upstream_request_duration_seconds_count 1\n") !=
          std::string::npos);
    CHECK(m.body.find("clerk_proxy_active_connections 1\n") != std::string::npos);
    // The admin endpoints are never on the main listener.
    CHECK(main.get("/metrics").status == 401);
}

TEST_CASE("access log: one JSON line per request, no query string, no token", "[it][log]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    CHECK(c.get("/open/a/../b?api_key=query-secret", {{"X-Request-Id", "log-1"}}).status == 200);
    CHECK(c.get("/api/x?x=1",
                {{"Authorization", "Bearer mt_secret_token_value"}, {"X-Request-Id", "log-2"}})
              .status == 503);
    const auto line = proxy.proc().wait_for_line(std::regex(R"("request_id":"log-2")"));
    REQUIRE(line);
    const auto first = proxy.proc().wait_for_line(std::regex(R"("request_id":"log-1")"));
    REQUIRE(first);
    const auto lines = proxy.proc().lines();
    nlohmann::json j1;
    nlohmann::json j2;
    for (const auto& l : lines) {
        if (l.find(R"("request_id":"log-1")") != std::string::npos) {
            j1 = nlohmann::json::parse(l);
        }
        if (l.find(R"("request_id":"log-2")") != std::string::npos) {
            j2 = nlohmann::json::parse(l);
        }
    }
    CHECK(j1["logger"] == "access");
    CHECK(j1["method"] == "GET");
    CHECK(j1["path"] == "/open/b");
    CHECK(j1["status"] == 200);
    CHECK(j1["bytes"] == 11);
    CHECK(j1["cache"] == "none");
    CHECK(j1["upstream_ms"].is_number());
    CHECK(j1["protocol"] == "HTTP/1.1");
    CHECK(j1.contains("duration_ms"));
    CHECK(j1.contains("time"));
    CHECK(j2["status"] == 503);
    CHECK(j2["token_type"] == "m2m_token");
    CHECK(j2["upstream_ms"].is_null());
    const auto out = proxy.proc().output();
    CHECK(out.find("query-secret") == std::string::npos);
    CHECK(out.find("mt_secret_token_value") == std::string::npos);
    CHECK(out.find("ak_test") == std::string::npos);
}

TEST_CASE("SIGTERM drains: in-flight request completes, readyz 503, exit 0", "[it][drain]") {
    recording_upstream up;
    up.set_handler([](const recorded_request& r) {
        upstream_behaviour b;
        if (r.target == "/open/slow") {
            b.delay = 1500ms;
            b.body = "slow done";
        }
        return b;
    });
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url(), "", "shutdown:\n  drain_timeout: 10s\n"));
    http_client idle(proxy.port());
    CHECK(idle.get("/open/warm").status == 200);  // an idle keep-alive connection

    auto slow = std::async(std::launch::async, [port = proxy.port()] {
        http_client c(port);
        return c.get("/open/slow");
    });
    REQUIRE(eventually([&] { return up.heads_received() >= 2; }));
    proxy.proc().signal(SIGTERM);
    REQUIRE(proxy.proc().wait_for_line(std::regex("draining")));

    http_client admin(proxy.admin_port());
    CHECK(admin.get("/readyz").status == 503);
    CHECK(admin.get("/healthz").status == 200);
    CHECK(idle.closed_by_peer());  // idle keep-alive connections are closed

    const auto r = slow.get();
    CHECK(r.status == 200);
    CHECK(r.body == "slow done");
    CHECK_FALSE(r.keep_alive);
    CHECK(proxy.proc().wait_exit(10s) == 0);
}

TEST_CASE("SIGHUP reloads routes, and a broken config keeps the old one", "[it][reload]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client c(proxy.port());
    CHECK(c.get("/new/x").status == 401);

    dir.write("proxy.yaml", basic_config(up.url(), "  - path: /new/*\n    auth: none\n"));
    auto from = proxy.proc().line_count();
    proxy.proc().signal(SIGHUP);
    REQUIRE(proxy.proc().wait_for_line(std::regex("configuration reloaded"), 10s, from));
    CHECK(c.get("/new/x").status == 200);  // same connection, new snapshot

    dir.write("proxy.yaml", basic_config(up.url()) + "no_such_key: 1\n");
    from = proxy.proc().line_count();
    proxy.proc().signal(SIGHUP);
    REQUIRE(proxy.proc().wait_for_line(std::regex("reload failed"), 10s, from));
    CHECK(proxy.proc().wait_for_line(std::regex("no_such_key"), 1s, from));
    http_client c2(proxy.port());
    CHECK(c2.get("/new/x").status == 200);
    CHECK(proxy.proc().running());
}

TEST_CASE("a listen port in use is exit 1 with a one-line reason", "[it][lifecycle]") {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    const auto port = ntohs(a.sin_port);

    recording_upstream up;
    temp_dir dir;
    auto yaml = basic_config(up.url());
    yaml.replace(yaml.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(port));
    const auto path = dir.write("proxy.yaml", yaml);
    process p(CLERK_PROXY_BIN, {"--config", path});
    CHECK(p.wait_exit(10s) == 1);
    CHECK(p.output().find("cannot listen on 127.0.0.1:" + std::to_string(port)) !=
          std::string::npos);
    ::close(fd);
}

TEST_CASE("a config file swapped the way Kubernetes does it reloads with no failed request",
          "[it][reload]") {
    namespace fs = std::filesystem;
    recording_upstream up;
    temp_dir dir;
    // kubelet's layout: proxy.yaml -> ..data/proxy.yaml, ..data -> ..<timestamp>/ (swapped by
    // renaming a fresh symlink over ..data, which is atomic).
    const auto root = dir.path();
    fs::create_directory(root / "..v1");
    fs::create_directory(root / "..v2");
    dir.write("..v1/proxy.yaml", basic_config(up.url()));
    dir.write("..v2/proxy.yaml", basic_config(up.url(), "  - path: /new/*\n    auth: none\n"));
    fs::create_directory_symlink("..v1", root / "..data");
    fs::create_symlink("..data/proxy.yaml", root / "proxy.yaml");

    process p(CLERK_PROXY_BIN, {"--config", (root / "proxy.yaml").string()});
    const auto m = p.wait_for_line(std::regex(R"re("msg":"listening on 127\.0\.0\.1:(\d+)")re"));
    REQUIRE(m);
    const auto port = static_cast<std::uint16_t>(std::stoi((*m)[1]));
    http_client c(port);
    CHECK(c.get("/new/x").status == 401);

    // Requests keep flowing on another connection while the file is swapped.
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::thread traffic([&] {
        http_client t(port);
        while (!stop) {
            (t.get("/open/x").status == 200 ? ok : failed)++;
        }
    });
    const auto from = p.line_count();
    fs::create_directory_symlink("..v2", root / "..data_tmp");
    fs::rename(root / "..data_tmp", root / "..data");
    const bool reloaded =
        p.wait_for_line(std::regex("configuration reloaded"), 10s, from).has_value();
    stop = true;
    traffic.join();
    REQUIRE(reloaded);
    CHECK(c.get("/new/x").status == 200);  // same connection, new snapshot
    CHECK(ok > 0);
    CHECK(failed == 0);
    p.signal(SIGTERM);
    CHECK(p.wait_exit(20s) == 0);
}
