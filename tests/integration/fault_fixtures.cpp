// Shared fixtures of the fault-injection suite (fault_*_it.cpp): see the header.
#include "fault_fixtures.hpp"

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
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

using json = nlohmann::json;

namespace clerk::it::fault_fixtures {

namespace {

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

std::string scaled_duration(int ms) {
    return std::to_string(scaled(ms)) + "ms";
}

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

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// --- parameters and their reasons

long fault_iterations() {
    const char* v = std::getenv("CLERK_FAULT_ITERATIONS");
    const long n = v != nullptr ? std::atol(v) : 0;
    return n > 0 ? n : 10000;
}

long warmup_iterations(long n) {
    return std::max<long>(64, n / 10);
}

int time_scale() {
    const char* v = std::getenv("CLERK_FAULT_TIME_SCALE");
    const int n = v != nullptr ? std::atoi(v) : 0;
    return n > 0 ? n : default_time_scale;
}

int scaled(int ms) {
    return ms * time_scale();
}

// --- emulator knobs

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

std::string fault_config(const std::string& upstream_url, const std::string& api_url,
                         const fault_settings& s) {
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

// --- a raw client

raw_conn::raw_conn(std::uint16_t port, int rcvbuf) {
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

raw_conn::~raw_conn() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void raw_conn::send_all(std::string_view data) {
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

std::optional<raw_conn::end> raw_conn::read_at_least(std::string& data, std::size_t n) {
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

void raw_conn::shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
}

void raw_conn::abort() {
    const linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
}

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

// --- outcomes

std::string label(const http_response& r) {
    std::string l = std::to_string(r.status);
    if (r.header("Content-Type") == "application/json") {
        const auto j = json::parse(r.body, nullptr, false);
        if (j.is_object() && j.contains("error")) {
            // Appended piecewise: GCC 12 warns (falsely) on " " + std::string&& here.
            l += ' ';
            l += j["error"].get<std::string>();
        }
        if (j.is_object() && j.contains("reason")) {
            l += " (";
            l += j["reason"].get<std::string>();
            l += ')';
        }
    }
    if (r.count("Retry-After") != 0) {
        l += " retry-after=" + r.header("Retry-After");
    }
    return l;
}

std::string describe(const outcomes& o) {
    std::ostringstream s;
    for (const auto& [k, v] : o) {
        s << "  " << v << " x " << k << "\n";
    }
    return s.str();
}

http_client& worker::http() {
    if (!client) {
        http_client::options o;
        o.timeout = duration(scaled(5000));
        client = std::make_unique<http_client>(port, o);
    }
    return *client;
}

long total(const outcomes& o) {
    long n = 0;
    for (const auto& [k, v] : o) {
        n += v;
    }
    return n;
}

// --- liveness and footprint

void check_alive(proxy_process& proxy) {
    const bool running = proxy.proc().running();
    INFO("proxy output (tail):\n" << tail(proxy.proc().output()));
    REQUIRE(running);
    http_client admin(proxy.admin_port());
    CHECK(admin.get("/healthz").status == 200);
}

void check_clean_exit(proxy_process& proxy) {
    proxy.proc().signal(SIGTERM);
    const auto code = proxy.proc().wait_exit(30s);
    INFO("proxy output (tail):\n" << tail(proxy.proc().output()));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
}

soak_result run_fault(proxy_process& proxy, const std::string& what, const iteration& one,
                      const std::string& expected, duration min_duration,
                      const std::function<void()>& before_main) {
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

// --- upstream and client faults

std::string get_request(const std::string& target, const std::string& token) {
    return "GET " + target + " HTTP/1.1\r\nHost: svc.example\r\nAuthorization: Bearer " + token +
           "\r\n\r\n";
}

std::string end_name(raw_conn::end e) {
    return e == raw_conn::end::eof ? "eof" : "reset";
}

std::string cut_label(const raw_head& h, std::size_t body_bytes, raw_conn::end how) {
    return std::to_string(h.status) + ", Content-Length " +
           (h.content_length ? std::to_string(*h.content_length) : std::string("none")) + ", " +
           std::to_string(body_bytes) + " body bytes, then " + end_name(how);
}

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

}  // namespace clerk::it::fault_fixtures
