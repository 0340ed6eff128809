// Fault injection (issue #7 item 3) through the real binaries on 127.0.0.1 port 0: a broken
// Clerk (slow, hanging, resetting, flapping, rate-limiting), a broken upstream (refusing,
// resetting or truncating mid-body, not speaking HTTP, hanging) and misbehaving clients
// (disconnecting mid-upload and mid-download). Every fault test checks the same four things:
//
//  1. the answer: the docs/reference.md §6 status for every one of the iterations (or, once the
//  response
//     head was sent, exactly what the client sees before the connection is cut);
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
#include "fault_upstream.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

using namespace clerk::it;
using json = nlohmann::json;

namespace {

// --- parameters and their reasons

long fault_iterations() {
    const char* v = std::getenv("CLERK_FAULT_ITERATIONS");
    const long n = v != nullptr ? std::atol(v) : 0;
    return n > 0 ? n : 10000;
}

/// Warm-up before the baseline: long enough for every pool, cache and malloc arena to reach its
/// steady size under the fault.
long warmup_iterations(long n) {
    return std::max<long>(64, n / 10);
}

constexpr int client_threads = 16;

/// Open fds that may differ between two quiet moments without any leak: up to 8 kept-alive
/// Clerk connections (the client's pool bound) plus upstream.max_idle_connections (4 here). A
/// leak of one fd per failed request would show as thousands.
constexpr long fd_tolerance = 12;

/// VmRSS growth allowed between the post-warm-up baseline and the end. The warm-up has already
/// grown the malloc arenas to the working set of client_threads concurrent requests, so what
/// remains is fragmentation noise (a few MiB at most). 8 MiB over 10,000 iterations is ~840
/// bytes per request: leaking any per-request object (session frame, parser, buffers, a
/// verification, a pooled connection) would exceed it.
constexpr long rss_growth_limit_kib = 8 * 1024;

/// Under ASan the quarantine (256 MiB by default) keeps freed memory resident on purpose, so RSS
/// says nothing; leaks are then caught by LeakSanitizer at the proxy's clean exit instead.
/// Sanitized binaries (the proxy, the emulator and this one, sharing two cores) also run several
/// times slower: the timeouts and the injected latency are scaled so that what a test measures
/// stays the fault, not the scheduler (a 50ms Clerk timeout would also catch a starved emulator).
/// CLERK_FAULT_TIME_SCALE overrides the factor (e.g. on a machine busy with other suites).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool rss_is_meaningful = false;
constexpr int default_time_scale = 10;
#else
constexpr bool rss_is_meaningful = true;
constexpr int default_time_scale = 1;
#endif

int time_scale() {
    const char* v = std::getenv("CLERK_FAULT_TIME_SCALE");
    const int n = v != nullptr ? std::atoi(v) : 0;
    return n > 0 ? n : default_time_scale;
}

/// `ms` milliseconds, scaled for sanitized builds.
int scaled(int ms) {
    return ms * time_scale();
}
std::string scaled_duration(int ms) {
    return std::to_string(scaled(ms)) + "ms";
}

constexpr int clerk_timeout_ms = 50;

/// The label of docs/reference.md §6's answer when Clerk cannot verify: 503, Retry-After: 1.
std::string auth_unavailable(const std::string& reason) {
    return "503 auth_unavailable (" + reason + ") retry-after=1";
}

// --- emulator knobs

/// `count` fresh opaque tokens of `machine_id`, minted over a few connections in parallel.
std::vector<std::string> mint_tokens(std::uint16_t emu_port, const std::string& machine_id,
                                     std::size_t count) {
    std::vector<std::string> out(count);
    std::vector<std::thread> threads;
    constexpr std::size_t n = 4;
    for (std::size_t t = 0; t < n; ++t) {
        threads.emplace_back([&, t] {
            // One kept-alive connection per thread (minting takes well under the emulator's
            // 60 s keep-alive), rather than clerk_knobs' connection per call.
            http_client c(emu_port);
            const std::string body = json{{"machine_id", machine_id}}.dump();
            for (std::size_t i = t; i < count; i += n) {
                const auto r = c.request("POST", "/__emulator/tokens",
                                         {{"Content-Type", "application/json"}}, body);
                out[i] = json::parse(r.body).value("token", "");
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    return out;
}

// --- config

struct fault_settings {
    int clerk_retries = 0;
    int upstream_timeout_ms = 200;
    int connect_timeout_ms = 500;
};

std::string fault_config(const std::string& upstream_url, const std::string& api_url,
                         const fault_settings& s = {}) {
    return "listen: \"127.0.0.1:0\"\n"
           "upstream:\n  url: \"" +
           upstream_url + "\"\n  connect_timeout: " + scaled_duration(s.connect_timeout_ms) +
           "\n  timeout: " + scaled_duration(s.upstream_timeout_ms) +
           "\n  max_idle_connections: 4\n"
           "clerk:\n  api_url: \"" +
           api_url + "\"\n  secret_key: \"" + instance_key +
           "\"\n  timeout: " + scaled_duration(clerk_timeout_ms) +
           "\n  retries: " + std::to_string(s.clerk_retries) +
           "\n"
           "cache:\n  max_entries: 1024\n"
           "admin:\n  listen: \"127.0.0.1:0\"\n"
           "log:\n  level: info\n  format: json\n  access_log: false\n"
           "threads: 2\n";
}

// --- a raw client: for the faults the well-behaved http_client cannot commit or observe

/// A blocking connection to 127.0.0.1:`port`; every read waits at most 10 s.
class raw_conn {
public:
    enum class end { eof, reset };

    explicit raw_conn(std::uint16_t port, int rcvbuf = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) {
            throw std::runtime_error("socket failed");
        }
        if (rcvbuf > 0) {
            ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        }
        const timeval tv{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(fd_);
            throw std::runtime_error("connect failed");
        }
    }
    ~raw_conn() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    raw_conn(const raw_conn&) = delete;
    raw_conn& operator=(const raw_conn&) = delete;

    void send_all(std::string_view data) {
        while (!data.empty()) {
            const auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                throw std::runtime_error("send failed: " + std::string(std::strerror(errno)));
            }
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    /// Appends what arrives until `data` holds `n` bytes; the way the peer closed, if it did
    /// first. Throws on timeout.
    std::optional<end> read_at_least(std::string& data, std::size_t n) {
        char buf[16384];
        while (data.size() < n) {
            const auto got = ::recv(fd_, buf, sizeof buf, 0);
            if (got > 0) {
                data.append(buf, static_cast<std::size_t>(got));
                continue;
            }
            if (got == 0) {
                return end::eof;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno == ECONNRESET) {
                return end::reset;
            }
            throw std::runtime_error("recv: " + std::string(std::strerror(errno)));
        }
        return std::nullopt;
    }
    /// Reads until the peer closes; how it closed.
    end read_to_close(std::string& data) { return *read_at_least(data, std::string::npos); }

    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
    /// Aborts the connection: SO_LINGER 0, then close, so the peer gets a RST.
    void abort() {
        const linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

/// The head of a raw response: status, Content-Length and where the body starts.
struct raw_head {
    int status = 0;
    std::optional<std::uint64_t> content_length;
    std::size_t body_offset = 0;
};

std::optional<raw_head> parse_head(const std::string& data) {
    const auto end = data.find("\r\n\r\n");
    if (end == std::string::npos || data.compare(0, 9, "HTTP/1.1 ") != 0) {
        return std::nullopt;
    }
    raw_head h;
    h.status = std::atoi(data.c_str() + 9);
    h.body_offset = end + 4;
    std::string lower = data.substr(0, end);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (const auto p = lower.find("\r\ncontent-length:"); p != std::string::npos) {
        h.content_length = std::strtoull(lower.c_str() + p + 17, nullptr, 10);
    }
    return h;
}

/// Reads a response head from `c` into `data` (throws when the connection ends first).
raw_head read_head(raw_conn& c, std::string& data) {
    for (std::size_t want = 1;; want = data.size() + 1) {
        if (auto h = parse_head(data)) {
            return *h;
        }
        if (c.read_at_least(data, want)) {
            throw std::runtime_error("closed before a response head: [" + data + "]");
        }
    }
}

// --- outcomes: one short label per iteration, counted

/// "<status>[ <error>][ (<reason>)][ retry-after=<v>]": "200",
/// "503 auth_unavailable (timeout) retry-after=1", "502 upstream_unavailable (connect_failed)".
std::string label(const http_response& r) {
    std::string l = std::to_string(r.status);
    if (r.header("Content-Type") == "application/json") {
        const auto j = json::parse(r.body, nullptr, false);
        if (j.is_object() && j.contains("error")) {
            l += " " + j["error"].get<std::string>();
        }
        if (j.is_object() && j.contains("reason")) {
            l += " (" + j["reason"].get<std::string>() + ")";
        }
    }
    if (r.count("Retry-After") != 0) {
        l += " retry-after=" + r.header("Retry-After");
    }
    return l;
}

using outcomes = std::map<std::string, long>;

std::string describe(const outcomes& o) {
    std::ostringstream s;
    for (const auto& [k, v] : o) {
        s << "  " << v << " x " << k << "\n";
    }
    return s.str();
}

/// One client thread's state: a persistent connection to the proxy, made on first use.
struct worker {
    int id = 0;
    std::uint16_t port = 0;
    std::unique_ptr<http_client> client;
    std::unique_ptr<clerk_knobs> knobs;  ///< for iterations that mint their own token
    http_client& http() {
        if (!client) {
            http_client::options o;
            o.timeout = duration(scaled(5000));
            client = std::make_unique<http_client>(port, o);
        }
        return *client;
    }
};

using iteration = std::function<std::string(long i, worker& w)>;

/// Runs iterations `first` .. `first + count - 1` over client_threads threads (each takes the
/// next index) and counts the labels `one` returns; an exception counts as its message (and
/// drops the thread's connection). With `min_duration`, further indices run until it has passed.
outcomes soak(std::uint16_t port, long first, long count, const iteration& one,
              duration min_duration = 0ms) {
    std::atomic<long> next{first};
    const auto t0 = std::chrono::steady_clock::now();
    std::mutex mu;
    outcomes all;
    std::vector<std::thread> threads;
    for (int t = 0; t < client_threads; ++t) {
        threads.emplace_back([&, t] {
            worker w{t, port, nullptr, nullptr};
            outcomes mine;
            for (;;) {
                const long i = next++;
                if (i >= first + count && std::chrono::steady_clock::now() - t0 >= min_duration) {
                    break;
                }
                try {
                    ++mine[one(i, w)];
                } catch (const std::exception& e) {
                    ++mine[std::string("exception: ") + e.what()];
                    w.client.reset();
                }
            }
            std::lock_guard lock(mu);
            for (const auto& [k, v] : mine) {
                all[k] += v;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    return all;
}

long total(const outcomes& o) {
    long n = 0;
    for (const auto& [k, v] : o) {
        n += v;
    }
    return n;
}

long count_of(const outcomes& o, const std::string& label) {
    const auto it = o.find(label);
    return it == o.end() ? 0 : it->second;
}

/// 503 auth_unavailable with Retry-After: 1, whatever the reason: in the flapping test a 503 is
/// normally status_5xx (both attempts failed), but a call that timed out under load is as
/// legitimate an outage answer.
long unavailable_of(const outcomes& o) {
    long n = 0;
    for (const auto& [l, count] : o) {
        if (l.rfind("503 auth_unavailable (", 0) == 0 && l.size() > 15 &&
            l.compare(l.size() - 15, 15, ") retry-after=1") == 0) {
            n += count;
        }
    }
    return n;
}

/// Every iteration produced `expected`.
void check_all(const outcomes& o, const std::string& expected, long n) {
    INFO("outcomes:\n" << describe(o));
    CHECK(o.size() == 1);
    CHECK(o.count(expected) == 1);
    CHECK(total(o) == n);
}

// --- liveness and footprint

std::string tail(const std::string& s, std::size_t n = 4000) {
    return s.substr(s.size() > n ? s.size() - n : 0);
}

/// Still running, /healthz 200.
void check_alive(proxy_process& proxy) {
    const bool running = proxy.proc().running();
    INFO("proxy output (tail):\n" << tail(proxy.proc().output()));
    REQUIRE(running);
    http_client admin(proxy.admin_port());
    CHECK(admin.get("/healthz").status == 200);
}

struct footprint {
    long fds = -1;
    long rss_kib = -1;
};

/// Waits until the proxy holds no downstream connection (every client is gone), then reads its
/// open fds and VmRSS.
footprint quiet_footprint(proxy_process& proxy) {
    double active = -1;
    const bool idle = eventually(
        [&] {
            active =
                scrape_metric(proxy.admin_port(), "clerk_proxy_active_connections").value_or(-1);
            return active == 0;
        },
        15s);
    INFO("clerk_proxy_active_connections = " << active);
    CHECK(idle);
    return {proc_open_fds(proxy.proc().pid()), proc_rss_kib(proxy.proc().pid())};
}

/// fds back to the baseline (small tolerance) and bounded RSS growth; reports the figures.
void check_footprint(proxy_process& proxy, const footprint& base, const std::string& what,
                     double seconds, long iterations) {
    footprint now;
    const bool fds_ok = eventually(
        [&] {
            now = quiet_footprint(proxy);
            return now.fds >= 0 && now.fds <= base.fds + fd_tolerance;
        },
        15s);
    WARN(what << ": " << iterations << " iterations in " << seconds << " s; fds " << base.fds
              << " -> " << now.fds << ", VmRSS " << base.rss_kib << " -> " << now.rss_kib
              << " KiB (" << (now.rss_kib - base.rss_kib) << " KiB)");
    CHECK(base.fds > 0);
    CHECK(fds_ok);
    if (rss_is_meaningful) {
        CHECK(now.rss_kib - base.rss_kib <= rss_growth_limit_kib);
    }
}

/// SIGTERM: a clean drain and exit 0 (and, under ASan, a clean LeakSanitizer report).
void check_clean_exit(proxy_process& proxy) {
    proxy.proc().signal(SIGTERM);
    const auto code = proxy.proc().wait_exit(30s);
    INFO("proxy output (tail):\n" << tail(proxy.proc().output()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

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
                      const std::function<void()>& before_main = {}) {
    const long n = fault_iterations();
    const long warm = warmup_iterations(n);
    const auto warm_out = soak(proxy.port(), 0, warm, one);
    if (!expected.empty()) {
        check_all(warm_out, expected, warm);
    }
    check_alive(proxy);
    const footprint base = quiet_footprint(proxy);
    if (before_main) {
        before_main();
    }
    const auto t0 = std::chrono::steady_clock::now();
    soak_result r;
    r.main = soak(proxy.port(), warm, n, one, min_duration);
    r.seconds = seconds_since(t0);
    check_alive(proxy);
    if (!expected.empty()) {
        check_all(r.main, expected, n);
    }
    check_footprint(proxy, base, what, r.seconds, total(r.main));
    return r;
}

// --- Clerk fault scenarios

struct clerk_env {
    clerk_env() : emu({"a"}), knobs(emu.port()) {}
    std::string machine() const { return emu.machines().at(0).id; }

    temp_dir dir;
    emulator_process emu;
    recording_upstream up;
    clerk_knobs knobs;
};

/// One Clerk fault: configure it, soak with one distinct token per client thread (so concurrent
/// requests never share a single flight, and failures are never cached: every request is a
/// Clerk call), expect 503 auth_unavailable + Retry-After: 1 for all, `calls_per_request`
/// verify calls each, then heal and recover with a fresh Clerk call.
void clerk_fault(const std::string& what, int retries, long calls_per_request,
                 const std::string& reason, const std::function<void(clerk_knobs&)>& inject,
                 const std::function<void(clerk_knobs&)>& heal) {
    clerk_env env;
    fault_settings s;
    s.clerk_retries = retries;
    proxy_process proxy(env.dir, fault_config(env.up.url(), env.emu.url(), s));
    const auto tokens = mint_tokens(env.emu.port(), env.machine(), client_threads + 1);
    inject(env.knobs);

    auto one = [&](long, worker& w) {
        return label(w.http().get("/api/x", bearer(tokens[static_cast<std::size_t>(w.id)])));
    };
    const auto r = run_fault(proxy, what, one, {}, 0ms, [&] { env.knobs.reset_stats(); });
    // Every request is a 503 auth_unavailable with Retry-After: 1. Its reason is the fault's,
    // except that on a loaded machine a call can reach its 50 ms deadline before the fault shows
    // (a reset not yet read, a connect not yet done): such a request is a `timeout`, and it may
    // not have reached the emulator at all. Those must stay rare (< 5%), or the test is not
    // exercising the fault.
    const long n = fault_iterations();
    {
        INFO("outcomes:\n" << describe(r.main));
        CHECK(total(r.main) == n);
        CHECK(unavailable_of(r.main) == n);
        const long as_expected = count_of(r.main, auth_unavailable(reason));
        const long timed_out =
            reason == "timeout" ? 0 : count_of(r.main, auth_unavailable("timeout"));
        CHECK(as_expected + timed_out == n);
        CHECK(as_expected >= n * 95 / 100);
    }
    // Every request reached Clerk (nothing cached, nothing coalesced) and was retried as
    // configured: never more calls than retries allow, and (see above) at most a few fewer.
    // (The emulator may still be reading the last calls: wait for them, then compare.)
    const long expected_calls = calls_per_request * n;
    eventually([&] { return env.knobs.verify_calls() >= expected_calls; }, 5s);
    CHECK(env.knobs.verify_calls() <= expected_calls);
    CHECK(env.knobs.verify_calls() >= expected_calls * 95 / 100);
    CHECK(env.up.requests().empty());

    heal(env.knobs);
    env.knobs.reset_stats();
    {
        http_client c(proxy.port());
        CHECK(c.get("/api/x", bearer(tokens.back())).status == 200);  // never verified before
        CHECK(env.knobs.verify_calls() == 1);
        CHECK(c.get("/api/x", bearer(tokens.front())).status == 200);  // failures not cached
        CHECK(env.knobs.verify_calls() == 2);
    }
    CHECK(env.up.requests().size() == 2);
    check_alive(proxy);
    check_clean_exit(proxy);
}

}  // namespace

TEST_CASE("fault: Clerk slower than clerk.timeout gives 503 and recovers", "[it][fault]") {
    // latency = 2 x clerk.timeout (50ms): every call times out; retries 0.
    clerk_fault(
        "Clerk slow", 0, 1, "timeout",
        [](clerk_knobs& k) { k.latency(2 * scaled(clerk_timeout_ms)); },
        [](clerk_knobs& k) { k.latency(0); });
}

TEST_CASE("fault: Clerk hanging gives 503 and recovers", "[it][fault]") {
    clerk_fault(
        "Clerk hanging", 0, 1, "timeout", [](clerk_knobs& k) { k.fail(1000000000, "hang"); },
        [](clerk_knobs& k) { k.heal(); });
}

TEST_CASE("fault: Clerk resetting connections gives 503 after one retry and recovers",
          "[it][fault]") {
    // TCP RST on every verify call; retries 1: two calls per request.
    clerk_fault(
        "Clerk resetting", 1, 2, "io", [](clerk_knobs& k) { k.fail(1000000000, "reset"); },
        [](clerk_knobs& k) { k.heal(); });
}

TEST_CASE("fault: Clerk 429 storm with Retry-After beyond the budget gives 503 at once",
          "[it][fault]") {
    // Retry-After: 1 s (time_scale s in sanitized builds) never fits the request's budget
    // (2 x clerk.timeout + 250ms): no retry, one call per request.
    clerk_fault(
        "Clerk 429 + Retry-After", 1, 1, "status_429",
        [](clerk_knobs& k) { k.fail(1000000000, "status", 429, time_scale()); },
        [](clerk_knobs& k) { k.heal(); });
}

TEST_CASE("fault: Clerk 429 storm without Retry-After retries with backoff then 503",
          "[it][fault]") {
    clerk_fault(
        "Clerk 429 without Retry-After", 1, 2, "status_429",
        [](clerk_knobs& k) { k.fail(1000000000, "status", 429); },
        [](clerk_knobs& k) { k.heal(); });
}

TEST_CASE("fault: Clerk flapping between healthy and 500 every second", "[it][fault]") {
    clerk_env env;
    fault_settings s;
    s.clerk_retries = 1;
    proxy_process proxy(env.dir, fault_config(env.up.url(), env.emu.url(), s));
    const long n = fault_iterations();
    const long warm = warmup_iterations(n);
    // One token per request, so that every request is a Clerk call (none is answered from the
    // cache); the last one is kept for the recovery check.
    const auto tokens =
        mint_tokens(env.emu.port(), env.machine(), static_cast<std::size_t>(warm + n + 1));
    const std::size_t minted = tokens.size() - 1;

    // The flapper: 500 on every verify call for a second, healthy for a second, and so on.
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
    long flips = 0;
    std::thread flapper([&] {
        clerk_knobs k(env.emu.port());
        std::unique_lock lock(mu);
        for (bool failing = true; !stop; failing = !failing) {
            lock.unlock();
            if (failing) {
                k.fail(1000000000, "status", 500);
            } else {
                k.heal();
            }
            lock.lock();
            ++flips;
            cv.wait_for(lock, 1s, [&] { return stop; });
        }
    });
    struct stop_flapper {
        std::mutex& mu;
        std::condition_variable& cv;
        bool& stop;
        std::thread& t;
        ~stop_flapper() {
            {
                std::lock_guard lock(mu);
                stop = true;
            }
            cv.notify_all();
            t.join();
        }
    };
    std::optional<stop_flapper> stopper(std::in_place, mu, cv, stop, flapper);

    auto one = [&](long i, worker& w) {
        const auto k = static_cast<std::size_t>(i);
        if (k < minted) {
            return label(w.http().get("/api/x", bearer(tokens[k])));
        }
        // Beyond the pre-minted tokens (a short run kept going for min_duration): mint one.
        if (!w.knobs) {
            w.knobs = std::make_unique<clerk_knobs>(env.emu.port());
        }
        return label(w.http().get("/api/x", bearer(w.knobs->mint_token(env.machine()))));
    };
    std::size_t forwarded_before = 0;
    const auto r = run_fault(proxy, "Clerk flapping", one, {}, 2500ms, [&] {
        env.knobs.reset_stats();
        forwarded_before = env.up.requests().size();
    });
    stopper.reset();
    long calls = 0;
    eventually([&] {
        calls = env.knobs.verify_calls();
        return calls >= 2 * unavailable_of(r.main) + count_of(r.main, "200");
    });
    const long all = total(r.main);
    const long ok = count_of(r.main, "200");
    const long unavailable = unavailable_of(r.main);
    INFO("outcomes:\n" << describe(r.main) << "flips: " << flips << ", verify calls: " << calls);
    // Only the two answers of a flapping Clerk, and both of them.
    CHECK(ok + unavailable == all);
    CHECK(ok > 0);
    CHECK(unavailable > 0);
    CHECK(flips >= 3);
    // Exactly the 200s were forwarded.
    CHECK(static_cast<long>(env.up.requests().size() - forwarded_before) == ok);
    // Every token was new: a 503 cost two calls (retries 1), a 200 one or two.
    CHECK(calls >= 2 * unavailable + ok);
    CHECK(calls <= 2 * all);

    env.knobs.heal();
    env.knobs.reset_stats();
    {
        http_client c(proxy.port());
        CHECK(c.get("/api/x", bearer(tokens.back())).status == 200);
        CHECK(env.knobs.verify_calls() == 1);
    }
    check_alive(proxy);
    check_clean_exit(proxy);
}

// --- upstream faults: authenticated requests (one cached token per client thread) to an
// upstream that misbehaves; the Clerk emulator is healthy.

namespace {

struct upstream_case {
    clerk_env env;
    std::vector<std::string> tokens;  ///< one per client thread, verified during the warm-up
};

std::string get_request(const std::string& target, const std::string& token) {
    return "GET " + target + " HTTP/1.1\r\nHost: svc.example\r\nAuthorization: Bearer " + token +
           "\r\n\r\n";
}

std::string end_name(raw_conn::end e) {
    return e == raw_conn::end::eof ? "eof" : "reset";
}

/// What a client saw of a response that was cut after its head.
std::string cut_label(const raw_head& h, std::size_t body_bytes, raw_conn::end how) {
    return std::to_string(h.status) + ", Content-Length " +
           (h.content_length ? std::to_string(*h.content_length) : std::string("none")) + ", " +
           std::to_string(body_bytes) + " body bytes, then " + end_name(how);
}

/// Verifies each token once through the proxy before the fault starts, so that the soak's
/// requests are cache hits and the upstream or client fault is the only one in play (under a
/// sanitizer a first Clerk call may time out: that is retried here, it is not the subject).
void prime_tokens(proxy_process& proxy, const std::vector<std::string>& tokens) {
    for (const auto& t : tokens) {
        int status = 0;
        const bool verified = eventually(
            [&] {
                http_client c(proxy.port());
                status = c.get("/api/x?id=0", bearer(t)).status;
                return status != 503;
            },
            20s);
        INFO("priming a token: last status " << status);
        REQUIRE(verified);
    }
}

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
