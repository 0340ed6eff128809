// Bodies streamed both ways in bounded chunks: 64 MiB through the proxy, SHA-256 compared.
#include "harness.hpp"

#include <catch2/catch.hpp>

#include <fstream>

using namespace clerk::it;

namespace {

constexpr std::uint64_t big = 64ULL * 1024 * 1024;

/// Peak resident set of a process (VmHWM), in KiB.
[[maybe_unused]] long peak_rss_kib(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmHWM:", 0) == 0) {
            return std::stol(line.substr(6));
        }
    }
    return -1;
}

}  // namespace

TEST_CASE("64 MiB request bodies stream to the upstream intact", "[it][streaming]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client::options o;
    o.timeout = 60s;
    http_client c(proxy.port(), o);
    std::string sha;
    CHECK(c.upload("POST", "/open/upload", big, false, {}, &sha).status == 200);
    std::string sha_chunked;
    CHECK(c.upload("PUT", "/open/upload", big, true, {}, &sha_chunked).status == 200);
    REQUIRE(up.wait_for_requests(2));
    const auto seen = up.requests();
    CHECK(seen[0].body_size == big);
    CHECK(seen[0].body_sha256 == sha);
    CHECK(seen[0].header("Content-Length") == std::to_string(big));
    CHECK(seen[1].body_size == big);
    CHECK(seen[1].body_sha256 == sha_chunked);
    CHECK(seen[1].chunked);
    CHECK(sha == pattern_sha256(big));
#if !defined(__SANITIZE_ADDRESS__)
    CHECK(peak_rss_kib(proxy.proc().pid()) < 64 * 1024);
#endif
}

TEST_CASE("64 MiB responses stream to the client intact", "[it][streaming]") {
    recording_upstream up;
    up.set_handler([](const recorded_request& r) {
        upstream_behaviour b;
        b.generated_bytes = big;
        b.chunked = r.target == "/open/chunked";
        return b;
    });
    temp_dir dir;
    proxy_process proxy(dir, basic_config(up.url()));
    http_client::options o;
    o.timeout = 60s;
    http_client c(proxy.port(), o);
    const auto expected = pattern_sha256(big);
    const auto a = c.download("/open/length");
    CHECK(a.status == 200);
    CHECK(a.header("Content-Length") == std::to_string(big));
    CHECK(a.body_size == big);
    CHECK(a.body_sha256 == expected);
    const auto b = c.download("/open/chunked");
    CHECK(b.status == 200);
    CHECK(b.header("Transfer-Encoding") == "chunked");
    CHECK(b.body_size == big);
    CHECK(b.body_sha256 == expected);
#if !defined(__SANITIZE_ADDRESS__)
    CHECK(peak_rss_kib(proxy.proc().pid()) < 64 * 1024);
#endif
}
