#pragma once
// Shared fixtures of the fault-injection suite (fault_*_it.cpp).
//
// Fault injection (issue #7 item 3) through the real binaries on 127.0.0.1 port 0: a broken
// Clerk (slow, hanging, resetting, flapping, rate-limiting), a broken upstream (refusing,
// resetting or truncating mid-body, not speaking HTTP, hanging) and misbehaving clients
// (disconnecting mid-upload and mid-download). Every fault test checks the same four things:
//
//  1. the answer: the docs/reference.md §6 status for every one of the iterations (or, once the
//     response head was sent, exactly what the client sees before the connection is cut);
//  2. no crash: the process still runs and /healthz answers 200, and it exits 0 on SIGTERM
//     (under ASan that exit also runs LeakSanitizer);
//  3. no leak: with every client gone, clerk_proxy_active_connections is 0, the open fd count is
//     back to its post-warm-up baseline (+fd_tolerance) and VmRSS grew by at most
//     rss_growth_limit_kib over the run;
//  4. recovery: once the fault stops a normal request succeeds (with a fresh Clerk call where
//     it matters, proven by the emulator's verify counter).
//
// CLERK_FAULT_ITERATIONS (default 10000) sets the iterations per fault (the ASan pass uses
// fewer; sanitized builds also scale every timeout, see time_scale); each runs over
// `client_threads` threads with short timeouts so a test stays bounded.
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clerk::it::fault_fixtures {

// --- parameters and their reasons

/// CLERK_FAULT_ITERATIONS, default 10000.
long fault_iterations();

/// Warm-up before the baseline: long enough for every pool, cache and malloc arena to reach its
/// steady size under the fault.
long warmup_iterations(long n);

inline constexpr int client_threads = 16;

/// The factor every timeout and injected latency is scaled by: CLERK_FAULT_TIME_SCALE, else 10
/// in sanitized builds and 1 otherwise (see fault_fixtures.cpp).
int time_scale();

/// `ms` milliseconds, scaled for sanitized builds.
int scaled(int ms);

inline constexpr int clerk_timeout_ms = 50;

// --- emulator knobs

/// `count` fresh opaque tokens of `machine_id`, minted over a few connections in parallel.
std::vector<std::string> mint_tokens(std::uint16_t emu_port, const std::string& machine_id,
                                     std::size_t count);

// --- config

struct fault_settings {
    int clerk_retries = 0;
    int upstream_timeout_ms = 200;
    int connect_timeout_ms = 500;
};

std::string fault_config(const std::string& upstream_url, const std::string& api_url,
                         const fault_settings& s = {});

// --- a raw client: for the faults the well-behaved http_client cannot commit or observe

/// A blocking connection to 127.0.0.1:`port`; every read waits at most 10 s.
class raw_conn {
public:
    enum class end { eof, reset };

    explicit raw_conn(std::uint16_t port, int rcvbuf = 0);
    ~raw_conn();
    raw_conn(const raw_conn&) = delete;
    raw_conn& operator=(const raw_conn&) = delete;

    void send_all(std::string_view data);

    /// Appends what arrives until `data` holds `n` bytes; the way the peer closed, if it did
    /// first. Throws on timeout.
    std::optional<end> read_at_least(std::string& data, std::size_t n);
    /// Reads until the peer closes; how it closed.
    end read_to_close(std::string& data) { return *read_at_least(data, std::string::npos); }

    void shutdown_write();
    /// Aborts the connection: SO_LINGER 0, then close, so the peer gets a RST.
    void abort();

private:
    int fd_ = -1;
};

/// The head of a raw response: status, Content-Length and where the body starts.
struct raw_head {
    int status = 0;
    std::optional<std::uint64_t> content_length;
    std::size_t body_offset = 0;
};

/// Reads a response head from `c` into `data` (throws when the connection ends first).
raw_head read_head(raw_conn& c, std::string& data);

// --- outcomes: one short label per iteration, counted

/// "<status>[ <error>][ (<reason>)][ retry-after=<v>]": "200",
/// "503 auth_unavailable (timeout) retry-after=1", "502 upstream_unavailable (connect_failed)".
std::string label(const http_response& r);

using outcomes = std::map<std::string, long>;

std::string describe(const outcomes& o);

/// One client thread's state: a persistent connection to the proxy, made on first use.
struct worker {
    int id = 0;
    std::uint16_t port = 0;
    std::unique_ptr<http_client> client;
    std::unique_ptr<clerk_knobs> knobs;  ///< for iterations that mint their own token
    http_client& http();
};

using iteration = std::function<std::string(long i, worker& w)>;

long total(const outcomes& o);

// --- liveness and footprint

/// Still running, /healthz 200.
void check_alive(proxy_process& proxy);

/// SIGTERM: a clean drain and exit 0 (and, under ASan, a clean LeakSanitizer report).
void check_clean_exit(proxy_process& proxy);

struct soak_result {
    outcomes main;
    double seconds = 0;
};

/// The whole fault scenario: `warm` iterations under the fault, the baseline footprint,
/// `n` iterations (`before_main` runs in between), then liveness and footprint checks. With a
/// non-empty `expected` every iteration (warm-up included) must produce it; otherwise the
/// caller judges the returned outcomes of the main run.
soak_result run_fault(proxy_process& proxy, const std::string& what, const iteration& one,
                      const std::string& expected, duration min_duration = 0ms,
                      const std::function<void()>& before_main = {});

// --- the environment: the Clerk emulator with one machine and a recording upstream

struct clerk_env {
    clerk_env() : emu({"a"}), knobs(emu.port()) {}
    std::string machine() const { return emu.machines().at(0).id; }

    temp_dir dir;
    emulator_process emu;
    recording_upstream up;
    clerk_knobs knobs;
};

// --- upstream and client faults: authenticated requests (one cached token per client thread)

struct upstream_case {
    clerk_env env;
    std::vector<std::string> tokens;  ///< one per client thread, verified during the warm-up
};

std::string get_request(const std::string& target, const std::string& token);

std::string end_name(raw_conn::end e);

/// What a client saw of a response that was cut after its head.
std::string cut_label(const raw_head& h, std::size_t body_bytes, raw_conn::end how);

/// Verifies each token once through the proxy before the fault starts, so that the soak's
/// requests are cache hits and the upstream or client fault is the only one in play (under a
/// sanitizer a first Clerk call may time out: that is retried here, it is not the subject).
void prime_tokens(proxy_process& proxy, const std::vector<std::string>& tokens);

}  // namespace clerk::it::fault_fixtures
