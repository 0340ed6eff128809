// Fault injection: a broken upstream (refusing, resetting, truncating, invalid, never answering).
#include "clerk_knobs.hpp"
#include "fault_fixtures.hpp"
#include "fault_upstream.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

using namespace clerk::it;
using namespace clerk::it::fault_fixtures;

// --- upstream faults: authenticated requests (one cached token per client thread) to an
// upstream that misbehaves; the Clerk emulator is healthy.

namespace {

/// The fault stopped: the same upstream answers "200 ok" through the proxy.
void check_upstream_recovery(proxy_process& proxy, fault_upstream& up, const std::string& token) {
    up.set_mode(upstream_fault::none);
    http_client c(proxy.port());
    const auto r = c.get("/api/x?id=1", bearer(token));
    CHECK(r.status == 200);
    CHECK(r.body == "ok");
}

}  // namespace

TEST_CASE("fault: upstream refusing connections gives 502 and recovers", "[it][fault]") {
    // Bound but not listening: every connect is refused, until listen().
    fault_upstream up(upstream_fault::none, false);
    upstream_case u;
    proxy_process proxy(u.env.dir, fault_config(up.url(), u.env.emu.url()));
    u.tokens = mint_tokens(u.env.emu.port(), u.env.machine(), client_threads);
    prime_tokens(proxy, u.tokens);
    auto one = [&](long, worker& w) {
        return label(w.http().get("/api/x", bearer(u.tokens[static_cast<std::size_t>(w.id)])));
    };
    run_fault(proxy, "upstream refusing", one, "502 upstream_unavailable (connect_failed)");
    CHECK(up.connections_accepted() == 0);
    up.listen();
    check_upstream_recovery(proxy, up, u.tokens[0]);
    check_alive(proxy);
    check_clean_exit(proxy);
}

TEST_CASE("fault: upstream resetting mid-response cuts the client after the partial body",
          "[it][fault]") {
    fault_upstream up(upstream_fault::none);  // healthy while the tokens are primed
    upstream_case u;
    proxy_process proxy(u.env.dir, fault_config(up.url(), u.env.emu.url()));
    u.tokens = mint_tokens(u.env.emu.port(), u.env.machine(), client_threads);
    prime_tokens(proxy, u.tokens);
    up.set_mode(upstream_fault::reset_mid_body);
    auto one = [&](long i, worker& w) {
        raw_conn c(proxy.port());
        c.send_all(get_request("/api/x?id=" + std::to_string(i),
                               u.tokens[static_cast<std::size_t>(w.id)]));
        std::string data;
        const raw_head h = read_head(c, data);
        // The partial body has reached the client through the proxy; only now the upstream
        // resets its connection (so the RST cannot overtake the head or the body).
        auto how = c.read_at_least(data, h.body_offset + fault_upstream::sent_body);
        up.release(static_cast<std::uint64_t>(i));
        if (!how) {
            how = c.read_to_close(data);
        }
        return cut_label(h, data.size() - h.body_offset, *how);
    };
    run_fault(proxy, "upstream reset mid-body", one,
              "200, Content-Length 65536, 1024 body bytes, then eof");
    check_upstream_recovery(proxy, up, u.tokens[0]);
    check_alive(proxy);
    check_clean_exit(proxy);
}

TEST_CASE("fault: upstream truncating the body cuts the client after the partial body",
          "[it][fault]") {
    fault_upstream up(upstream_fault::none);  // healthy while the tokens are primed
    upstream_case u;
    proxy_process proxy(u.env.dir, fault_config(up.url(), u.env.emu.url()));
    u.tokens = mint_tokens(u.env.emu.port(), u.env.machine(), client_threads);
    prime_tokens(proxy, u.tokens);
    up.set_mode(upstream_fault::truncated_body);
    auto one = [&](long i, worker& w) {
        raw_conn c(proxy.port());
        c.send_all(get_request("/api/x?id=" + std::to_string(i),
                               u.tokens[static_cast<std::size_t>(w.id)]));
        std::string data;
        const raw_head h = read_head(c, data);
        const auto how = c.read_to_close(data);
        return cut_label(h, data.size() - h.body_offset, how);
    };
    run_fault(proxy, "upstream truncated body", one,
              "200, Content-Length 65536, 1024 body bytes, then eof");
    check_upstream_recovery(proxy, up, u.tokens[0]);
    check_alive(proxy);
    check_clean_exit(proxy);
}

TEST_CASE("fault: upstream sending an invalid response gives 502 and recovers", "[it][fault]") {
    // Even ids: a garbage status line; odd ids: a header line without a colon.
    fault_upstream up(upstream_fault::none);  // healthy while the tokens are primed
    upstream_case u;
    proxy_process proxy(u.env.dir, fault_config(up.url(), u.env.emu.url()));
    u.tokens = mint_tokens(u.env.emu.port(), u.env.machine(), client_threads);
    prime_tokens(proxy, u.tokens);
    up.set_mode(upstream_fault::invalid_response);
    auto one = [&](long i, worker& w) {
        return label(w.http().get("/api/x?id=" + std::to_string(i),
                                  bearer(u.tokens[static_cast<std::size_t>(w.id)])));
    };
    run_fault(proxy, "upstream invalid response", one,
              "502 upstream_unavailable (invalid_response)");
    check_upstream_recovery(proxy, up, u.tokens[0]);
    check_alive(proxy);
    check_clean_exit(proxy);
}

TEST_CASE("fault: upstream never answering gives 504 and recovers", "[it][fault]") {
    fault_upstream up(upstream_fault::none);  // healthy while the tokens are primed
    upstream_case u;
    fault_settings s;
    s.upstream_timeout_ms = 50;  // bounded test time: 10,000 x 50ms over 16 threads
    proxy_process proxy(u.env.dir, fault_config(up.url(), u.env.emu.url(), s));
    u.tokens = mint_tokens(u.env.emu.port(), u.env.machine(), client_threads);
    prime_tokens(proxy, u.tokens);
    up.set_mode(upstream_fault::hang);
    auto one = [&](long, worker& w) {
        return label(w.http().get("/api/x", bearer(u.tokens[static_cast<std::size_t>(w.id)])));
    };
    run_fault(proxy, "upstream hanging", one, "504 upstream_timeout");
    check_upstream_recovery(proxy, up, u.tokens[0]);
    check_alive(proxy);
    check_clean_exit(proxy);
}
