// Fault injection: clients disconnecting mid-upload and mid-download.
#include "clerk_knobs.hpp"
#include "fault_fixtures.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

using namespace clerk::it;
using namespace clerk::it::fault_fixtures;

// --- client faults: the upstream is healthy, the client goes away mid-exchange.

namespace {

/// For the client faults the upstream is healthy but it is one in-process thread that hashes
/// every body it receives: under 16 client threads it lags behind, sometimes by thousands of
/// connections still in its accept queue. On a loaded machine that queue fills up (4096, the
/// kernel's somaxconn): the kernel then drops the proxy's SYN, the next try comes a second
/// later, and a 500 ms connect_timeout answers 502 connect_timeout, which is right for an
/// upstream that cannot accept but is not what these tests are about (measured: 32-48 of 5,000
/// half-closed uploads, with TcpExtListenOverflows rising by twice that). Generous
/// upstream.timeout and connect_timeout keep that lag from being mistaken for an upstream fault
/// (502/504): these tests are about the client going away.
fault_settings patient_upstream() {
    fault_settings s;
    s.upstream_timeout_ms = 5000;
    s.connect_timeout_ms = 5000;
    return s;
}

}  // namespace

TEST_CASE("fault: client disconnecting mid-upload", "[it][fault]") {
    upstream_case u;
    proxy_process proxy(u.env.dir,
                        fault_config(u.env.up.url(), u.env.emu.url(), patient_upstream()));
    u.tokens = mint_tokens(u.env.emu.port(), u.env.machine(), client_threads);
    prime_tokens(proxy, u.tokens);
    constexpr std::size_t announced = 1024 * 1024;
    const std::string part(64 * 1024, 'u');
    auto one = [&](long i, worker& w) -> std::string {
        raw_conn c(proxy.port());
        c.send_all("POST /api/upload?id=" + std::to_string(i) +
                   " HTTP/1.1\r\nHost: svc.example\r\nAuthorization: Bearer " +
                   u.tokens[static_cast<std::size_t>(w.id)] +
                   "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                   std::to_string(announced) + "\r\n\r\n");
        c.send_all(part);
        if (i % 2 == 0) {
            // Half-close: the client stops sending 64 KiB into a 1 MiB body but still listens.
            c.shutdown_write();
            std::string data;
            const auto how = c.read_to_close(data);
            if (!data.empty()) {
                std::string label = "half-closed: answered [";
                label += data.substr(0, data.find("\r\n"));
                label += "] ";
                // The reason, not the whole body: it carries a request id, unique per answer.
                const auto r = data.find("\"reason\"");
                label += r == std::string::npos ? "" : data.substr(r, data.find(',', r) - r);
                label += ", then ";
                label += end_name(how);
                return label;
            }
            return "half-closed: no answer, then " + end_name(how);
        }
        c.abort();
        return "reset sent";
    };
    const auto r = run_fault(proxy, "client gone mid-upload", one, {});
    {
        const long n = fault_iterations();
        INFO("outcomes:\n" << describe(r.main));
        CHECK(r.main.size() == 2);
        CHECK(r.main.count("half-closed: no answer, then eof") == 1);
        CHECK(r.main.count("reset sent") == 1);
        CHECK(total(r.main) == n);
    }
    // Recovery: a complete upload is forwarded intact. The one-thread upstream may still be
    // working through the fault phase's connections (thousands queued on a loaded machine, more
    // than upstream.timeout's worth): first wait until it answers through the proxy again.
    REQUIRE(eventually(
        [&] {
            try {
                http_client probe(proxy.port());
                return probe.get("/api/probe", bearer(u.tokens[0])).status == 200;
            } catch (const std::exception&) {
                return false;
            }
        },
        120s));
    {
        http_client c(proxy.port());
        std::string sent_sha;
        const auto before = u.env.up.requests().size();
        const auto res =
            c.upload("POST", "/api/upload", announced, false, bearer(u.tokens[0]), &sent_sha);
        CHECK(res.status == 200);
        REQUIRE(u.env.up.wait_for_requests(before + 1));
        // The upstream records a request before answering it; fault-phase requests carry ?id=.
        const auto seen = u.env.up.requests();
        const auto it = std::find_if(seen.begin(), seen.end(), [](const recorded_request& q) {
            return q.target == "/api/upload";
        });
        REQUIRE(it != seen.end());
        CHECK(it->body_size == announced);
        CHECK(it->body_sha256 == sent_sha);
    }
    check_alive(proxy);
    check_clean_exit(proxy);
}

TEST_CASE("fault: client disconnecting mid-download", "[it][fault]") {
    upstream_case u;
    constexpr std::uint64_t size = 8 * 1024 * 1024;
    proxy_process proxy(u.env.dir,
                        fault_config(u.env.up.url(), u.env.emu.url(), patient_upstream()));
    u.tokens = mint_tokens(u.env.emu.port(), u.env.machine(), client_threads);
    prime_tokens(proxy, u.tokens);
    upstream_behaviour big;
    big.generated_bytes = size;
    u.env.up.set_behaviour(big);
    auto one = [&](long i, worker& w) -> std::string {
        // A small receive window, so the proxy is still writing when the client goes away.
        raw_conn c(proxy.port(), 64 * 1024);
        c.send_all(get_request("/api/download?id=" + std::to_string(i),
                               u.tokens[static_cast<std::size_t>(w.id)]));
        std::string data;
        const raw_head h = read_head(c, data);
        if (const auto how = c.read_at_least(data, h.body_offset + 64 * 1024)) {
            return "closed early: " + cut_label(h, data.size() - h.body_offset, *how);
        }
        if (i % 2 == 0) {
            c.abort();
        }  // else: closed with unread data, which the kernel also turns into a RST
        return std::to_string(h.status) + ", Content-Length " +
               std::to_string(h.content_length.value_or(0)) + ", read 64 KiB then left";
    };
    run_fault(proxy, "client gone mid-download", one,
              "200, Content-Length " + std::to_string(size) + ", read 64 KiB then left");
    {
        http_client c(proxy.port());
        const auto res = c.download("/api/download", bearer(u.tokens[0]));
        CHECK(res.status == 200);
        CHECK(res.body_size == size);
        CHECK(res.body_sha256 == pattern_sha256(size));
    }
    check_alive(proxy);
    check_clean_exit(proxy);
}
