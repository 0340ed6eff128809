#pragma once
// Loopback integration harness (CONTRIBUTING.md §10c), shared by every *_it.cpp: temp dirs, child
// processes with captured output, a recording upstream, a blocking HTTP client and launchers for
// clerk-m2m-proxy and clerk-emulator. Everything binds 127.0.0.1 port 0 and waits on conditions
// with deadlines, never on sleeps.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace clerk::it {

using namespace std::chrono_literals;
using duration = std::chrono::milliseconds;

/// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    /// Writes (or overwrites) `name` in the directory; returns its full path.
    std::string write(const std::string& name, const std::string& content) const;

private:
    std::filesystem::path path_;
};

/// A child process (fork/exec) whose stdout and stderr are read line by line by a thread.
/// Destruction kills it (SIGKILL) if it still runs and reaps it.
class process {
public:
    process(const std::string& binary, const std::vector<std::string>& args,
            const std::vector<std::pair<std::string, std::string>>& env = {});
    ~process();
    process(const process&) = delete;
    process& operator=(const process&) = delete;

    /// Waits until a line of output (from line index `from` on) matches `re`; returns the match
    /// groups (0 = whole match), or nullopt on timeout or when the process ended first.
    std::optional<std::vector<std::string>> wait_for_line(const std::regex& re,
                                                          duration timeout = 10s,
                                                          std::size_t from = 0);
    /// Lines captured so far (stdout and stderr interleaved as read).
    std::vector<std::string> lines() const;
    std::size_t line_count() const;
    std::string output() const;

    void signal(int sig);
    /// Waits for the exit; the exit code (128+N for a signal), or nullopt on timeout.
    std::optional<int> wait_exit(duration timeout = 10s);
    bool running();
    int pid() const { return pid_; }

private:
    void reader(int fd);
    int pid_ = -1;
    std::optional<int> exit_code_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::string> lines_;
    int open_pipes_ = 2;
    std::vector<std::thread> readers_;
};

/// What the recording upstream saw of one request.
struct recorded_request {
    std::string method;
    std::string target;
    std::vector<std::pair<std::string, std::string>> headers;  ///< in order, as received
    std::uint64_t body_size = 0;
    std::string body_sha256;       ///< hex
    std::uint64_t connection = 0;  ///< id of the upstream-side connection (1, 2, ...)
    bool chunked = false;
    /// First value of a header (case-insensitive), "" when absent.
    std::string header(std::string_view name) const;
    std::size_t count(std::string_view name) const;
};

/// How the recording upstream answers one request.
struct upstream_behaviour {
    int status = 200;
    std::string body = "upstream ok";
    std::vector<std::pair<std::string, std::string>> headers;
    duration delay{0};  ///< before the response head
    bool close_without_response = false;
    bool chunked = false;               ///< send the body with Transfer-Encoding: chunked
    std::uint64_t generated_bytes = 0;  ///< >0: a generated body of this size instead of `body`
    bool connection_close = false;      ///< answer with Connection: close and close
    bool send_continue = true;          ///< answer Expect: 100-continue with a 100 first
};

/// An in-process HTTP/1.1 server on 127.0.0.1:0 (own io_context and thread) that records
/// requests and answers as told. Optionally TLS (PEM cert/key files).
class recording_upstream {
public:
    struct options {
        std::string tls_cert_file;  ///< "" = plain HTTP
        std::string tls_key_file;
    };
    recording_upstream();
    explicit recording_upstream(const options& opts);
    ~recording_upstream();
    recording_upstream(const recording_upstream&) = delete;
    recording_upstream& operator=(const recording_upstream&) = delete;

    std::uint16_t port() const;
    std::string url() const;  ///< "http://127.0.0.1:PORT" (https when TLS)

    /// Decides the answer per request (default: 200 "upstream ok").
    void set_handler(std::function<upstream_behaviour(const recorded_request&)> h);
    void set_behaviour(upstream_behaviour b);

    std::vector<recorded_request> requests() const;
    /// Waits until at least `n` requests were recorded.
    bool wait_for_requests(std::size_t n, duration timeout = 10s) const;
    std::uint64_t connections_accepted() const;
    /// Number of request heads received (incremented before the body is read).
    std::uint64_t heads_received() const;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

/// A response as the test client saw it.
struct http_response {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;  ///< empty when the body was streamed (download)
    std::uint64_t body_size = 0;
    std::string body_sha256;  ///< hex, always computed
    bool keep_alive = true;
    std::string header(std::string_view name) const;
    std::size_t count(std::string_view name) const;
};

/// A blocking HTTP/1.1 client for tests, one persistent connection, every operation bounded by
/// `timeout`. Throws std::runtime_error on failure or timeout (so a test fails, never hangs).
class http_client {
public:
    struct options {
        duration timeout{10s};
        bool tls = false;
        std::string ca_file;      ///< trust for tls
        std::string server_name;  ///< SNI / verified name (default "localhost")
    };
    explicit http_client(std::uint16_t port);
    http_client(std::uint16_t port, const options& opts);
    ~http_client();
    http_client(const http_client&) = delete;
    http_client& operator=(const http_client&) = delete;

    using header_list = std::vector<std::pair<std::string, std::string>>;

    http_response request(const std::string& method, const std::string& target,
                          const header_list& headers = {}, const std::string& body = {});
    http_response get(const std::string& target, const header_list& headers = {}) {
        return request("GET", target, headers);
    }
    /// Streams a generated body of `size` bytes (chunked or with Content-Length) without holding
    /// it in memory. `sha256_out` receives the hex digest of what was sent.
    http_response upload(const std::string& method, const std::string& target, std::uint64_t size,
                         bool chunked, const header_list& headers, std::string* sha256_out);
    /// Like request() but the body is hashed while read, not kept (for large responses).
    http_response download(const std::string& target, const header_list& headers = {});

    /// Raw bytes on the connection (malformed requests, pipelining).
    void send_raw(const std::string& bytes);
    /// Reads one response (after send_raw). `head_request`: no body expected.
    http_response read_response(bool head_request = false);
    /// Reads one interim response head ("HTTP/1.1 100 Continue\r\n\r\n") and returns it.
    std::string read_interim();
    /// Reads until the server closes; returns what arrived. Throws on timeout.
    std::string read_until_close();
    /// True when the server closed the connection (EOF or reset) within the timeout.
    bool closed_by_peer();

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

/// Deterministic body bytes used by uploads and generated responses: byte i = (i * 7 + 3) % 251.
void fill_pattern(char* data, std::size_t n, std::uint64_t offset);
/// SHA-256 (hex) of `size` pattern bytes.
std::string pattern_sha256(std::uint64_t size);
std::string sha256_hex(std::string_view data);

/// clerk-m2m-proxy started with a config file; waits for its listener lines.
class proxy_process {
public:
    /// Writes `yaml` to dir/proxy.yaml and starts CLERK_PROXY_BIN --config it. Throws when the
    /// listening lines do not appear in time (the output is in the message).
    proxy_process(const temp_dir& dir, const std::string& yaml,
                  const std::vector<std::pair<std::string, std::string>>& env = {});
    std::uint16_t port() const { return port_; }
    std::uint16_t admin_port() const { return admin_port_; }
    process& proc() { return *proc_; }
    std::string config_path() const { return config_path_; }

private:
    std::string config_path_;
    std::unique_ptr<process> proc_;
    std::uint16_t port_ = 0;
    std::uint16_t admin_port_ = 0;
};

/// clerk-emulator (CLERK_EMULATOR_BIN) on 127.0.0.1:0 with machines created at start.
class emulator_process {
public:
    struct machine {
        std::string id;
        std::string name;
        std::string secret_key;
    };
    explicit emulator_process(const std::vector<std::string>& machine_names = {},
                              const std::vector<std::string>& extra_args = {});
    std::uint16_t port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    const std::vector<machine>& machines() const { return machines_; }
    process& proc() { return *proc_; }

private:
    std::unique_ptr<process> proc_;
    std::uint16_t port_ = 0;
    std::vector<machine> machines_;
};

/// A minimal valid proxy config (auth: none on /open/*, JSON logs, port 0, admin on port 0,
/// an unreachable Clerk) for `upstream_url`; `extra` is appended verbatim (top-level YAML).
std::string basic_config(const std::string& upstream_url, const std::string& routes_yaml = {},
                         const std::string& extra = {});

/// Creates a test CA and a server certificate for `names` (DNS and IP SANs) with the openssl
/// CLI in `dir`. Returns {ca_cert, cert, key} paths.
struct test_pki {
    std::string ca_cert;
    std::string cert;
    std::string key;
};
test_pki make_test_pki(const temp_dir& dir, const std::string& prefix,
                       const std::vector<std::string>& dns_names,
                       const std::vector<std::string>& ip_sans = {});

/// Polls `cond` until it is true or `timeout` passes (for conditions without a notification).
bool eventually(const std::function<bool()>& cond, duration timeout = 10s);

/// A loopback port that was free a moment ago (bound to port 0 and released): for servers that
/// cannot report the port they bound (nginx, Caddy, redis-server). Callers retry on the rare
/// collision.
std::uint16_t free_port();

// --- Resource probes for soak/fault tests (fault_fixtures.cpp): what a process holds, from /proc
// and from its admin /metrics. Linux only, like the rest of the harness.

/// Open file descriptors of process `pid` (entries of /proc/<pid>/fd), -1 when unreadable.
long proc_open_fds(int pid);
/// Resident set size of process `pid` in KiB (VmRSS in /proc/<pid>/status), -1 when unreadable.
long proc_rss_kib(int pid);
/// The value of one series of the Prometheus text at GET /metrics on 127.0.0.1:`admin_port`;
/// `series` is the exact name with its labels (`clerk_proxy_active_connections`,
/// `name{label="v"}`). nullopt when the series is absent. Throws when the scrape fails.
std::optional<double> scrape_metric(std::uint16_t admin_port, const std::string& series);

}  // namespace clerk::it
