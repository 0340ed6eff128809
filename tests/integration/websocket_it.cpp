// WebSocket pass-through (issue #17) through the real binaries: the proxy, the Clerk emulator, and
// a real WebSocket server and client (Debian python3-websockets, tests/integration/peers/
// ws_peer.py), plus a raw-socket client for what a library hides (drops, close timing, idle).
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

using namespace clerk::it;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

namespace {

const std::string python = "/usr/bin/python3";  // Debian's, which has websockets
const std::string peer_script =
    std::string(CLERK_SOURCE_DIR) + "/tests/integration/peers/ws_peer.py";

/// The echo server (ws_peer.py server) and what it reports.
class ws_server {
public:
    ws_server() : proc_(python, {peer_script, "server"}) {
        const auto m = proc_.wait_for_line(std::regex(R"(listening (\d+))"), 20s);
        if (!m) {
            throw std::runtime_error(
                "ws_peer.py server did not start (is python3-websockets "
                "installed? scripts/install-deps.sh test):\n" +
                proc_.output());
        }
        port_ = static_cast<std::uint16_t>(std::stoi((*m)[1]));
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    /// Handshakes the server accepted so far (their "open" events).
    std::vector<json> opened() const {
        std::vector<json> out;
        for (const auto& l : proc_.lines()) {
            if (l.rfind("{\"event\": \"open\"", 0) == 0) {
                out.push_back(json::parse(l));
            }
        }
        return out;
    }
    /// Waits for the `n`-th "closed" event.
    bool wait_closed(std::size_t n, duration timeout) {
        const auto deadline = steady::now() + timeout;
        return eventually(
            [&] {
                std::size_t c = 0;
                for (const auto& l : proc_.lines()) {
                    c += l == "{\"event\": \"closed\"}" ? 1 : 0;
                }
                return c >= n;
            },
            std::chrono::duration_cast<duration>(deadline - steady::now()));
    }

private:
    mutable process proc_;
    std::uint16_t port_ = 0;
};

/// A client connection on raw sockets: the handshake by hand, frames by hand (masked, as
/// RFC 6455 requires of clients), and exact observation of when the proxy closes.
class raw_ws {
public:
    explicit raw_ws(std::uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            throw std::runtime_error("raw_ws: connect failed");
        }
    }
    ~raw_ws() { close(); }
    raw_ws(const raw_ws&) = delete;
    raw_ws& operator=(const raw_ws&) = delete;

    void close() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    void send_all(std::string_view d) {
        while (!d.empty()) {
            const auto n = ::send(fd_, d.data(), d.size(), MSG_NOSIGNAL);
            if (n <= 0 && errno != EINTR) {
                throw std::runtime_error("raw_ws: send failed");
            }
            d.remove_prefix(n > 0 ? static_cast<std::size_t>(n) : 0);
        }
    }
    /// Sends the opening handshake for `path` and returns the response head.
    std::string handshake(const std::string& path, const std::string& token) {
        send_all("GET " + path +
                 " HTTP/1.1\r\nHost: svc.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                 (token.empty() ? std::string() : "Authorization: Bearer " + token + "\r\n") +
                 "\r\n");
        std::string head;
        while (head.find("\r\n\r\n") == std::string::npos) {
            if (!read_some(head, 10s)) {
                break;
            }
        }
        rest_ = head.substr(std::min(head.size(), head.find("\r\n\r\n") + 4));
        return head.substr(0, head.find("\r\n\r\n"));
    }
    /// Reads what arrives within `timeout`; false on EOF, error or timeout.
    bool read_some(std::string& out, duration timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
            return false;
        }
        char buf[65536];
        const auto n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) {
            eof_ = true;
            return false;
        }
        out.append(buf, static_cast<std::size_t>(n));
        return true;
    }
    /// Reads until `pred(data)` (data includes bytes that came with the handshake).
    bool read_until(const std::function<bool(const std::string&)>& pred, duration timeout) {
        const auto deadline = steady::now() + timeout;
        while (!pred(rest_)) {
            const auto left = std::chrono::duration_cast<duration>(deadline - steady::now());
            if (left.count() <= 0 || !read_some(rest_, left)) {
                return pred(rest_);
            }
        }
        return true;
    }
    /// True when the peer closed (EOF or reset) within `timeout`; reads and drops data.
    bool closed_within(duration timeout) {
        const auto deadline = steady::now() + timeout;
        while (!eof_) {
            const auto left = std::chrono::duration_cast<duration>(deadline - steady::now());
            if (left.count() <= 0) {
                return false;
            }
            std::string sink;
            if (!read_some(sink, left) && !eof_) {
                return false;
            }
        }
        return true;
    }
    const std::string& received() const { return rest_; }

private:
    int fd_ = -1;
    bool eof_ = false;
    std::string rest_;
};

/// A masked client frame (FIN set): opcode 1 text, 8 close.
std::string client_frame(int opcode, std::string_view payload) {
    std::string f;
    f += static_cast<char>(0x80 | opcode);
    f += static_cast<char>(0x80 | payload.size());  // tests send < 126 bytes
    const char mask[4] = {0x11, 0x22, 0x33, 0x44};
    f.append(mask, 4);
    for (std::size_t i = 0; i < payload.size(); ++i) {
        f += static_cast<char>(payload[i] ^ mask[i % 4]);
    }
    return f;
}

/// An unmasked server text frame as the echo sends it.
std::string server_text(std::string_view payload) {
    std::string f;
    f += static_cast<char>(0x81);
    f += static_cast<char>(payload.size());
    f += payload;
    return f;
}

struct ws_env {
    explicit ws_env(const std::string& limits = {}) : emu({"caller"}), knobs(emu.port()) {
        proxy = std::make_unique<proxy_process>(
            dir,
            "listen: \"127.0.0.1:0\"\n"
            "upstream:\n  url: \"" +
                server.url() +
                "\"\n"
                "clerk:\n  api_url: \"" +
                emu.url() + "\"\n  secret_key: \"" + instance_key +
                "\"\n"
                "admin:\n  listen: \"127.0.0.1:0\"\n"
                "shutdown:\n  drain_timeout: 1s\n"
                "limits:\n" +
                (limits.empty() ? std::string("  idle_timeout: 60s\n") : limits) +
                "log:\n  level: info\n  format: json\n  access_log: true\n"
                "threads: 2\n");
    }
    std::string mint(json extra = json::object()) {
        extra["machine_id"] = emu.machines().at(0).id;
        auto r = knobs.request("POST", "/__emulator/tokens", {{"Content-Type", "application/json"}},
                               extra.dump());
        REQUIRE(r.status / 100 == 2);
        return json::parse(r.body)["token"].get<std::string>();
    }
    double tunnels() {
        return scrape_metric(proxy->admin_port(), "clerk_proxy_websocket_tunnels").value_or(-1);
    }
    /// Runs ws_peer.py client through the proxy; its last line.
    std::string run_client(const std::string& token, const std::string& path = "ws/echo") {
        process c(python, {peer_script, "client", std::to_string(proxy->port()), token, path});
        const auto code = c.wait_exit(60s);
        INFO(c.output());
        REQUIRE(code);
        const auto lines = c.lines();
        return lines.empty() ? std::string() : lines.back();
    }

    temp_dir dir;
    emulator_process emu;
    http_client knobs;
    ws_server server;
    std::unique_ptr<proxy_process> proxy;
};

}  // namespace

TEST_CASE("websocket: a real client and server talk through the proxy", "[it][websocket]") {
    ws_env env;
    const std::string token = env.mint();

    SECTION("echo both ways, 1 MiB message, ping/pong; the server sees the verified identity") {
        CHECK(env.run_client(token) == "ok");
        const auto opened = env.server.opened();
        REQUIRE(opened.size() == 1);
        std::vector<std::string> subjects;
        bool upgrade = false;
        for (const auto& kv : opened[0]["headers"]) {
            const auto name = kv[0].get<std::string>();
            if (strcasecmp(name.c_str(), "X-Clerk-Subject") == 0) {
                subjects.push_back(kv[1].get<std::string>());
            }
            if (strcasecmp(name.c_str(), "Upgrade") == 0) {
                upgrade = kv[1].get<std::string>() == "websocket";
            }
            CHECK(strcasecmp(name.c_str(), "Authorization") != 0);
        }
        CHECK(subjects == std::vector<std::string>{env.emu.machines().at(0).id});
        CHECK(upgrade);
        CHECK(env.server.wait_closed(1, 5s));
        CHECK(eventually([&] { return env.tunnels() == 0; }, 5s));
        CHECK(scrape_metric(env.proxy->admin_port(), "clerk_proxy_requests_total{code=\"101\"}") ==
              1);
        // One access-log line when the tunnel closed: status 101 and bytes both ways (the 1 MiB
        // message each way, uncompressed: at least 7 digits).
        CHECK(env.proxy->proc().wait_for_line(
            std::regex(
                R"("path":"/ws/echo","status":101,.*"bytes":[1-9][0-9]{6,},.*"bytes_in":[1-9][0-9]{6,})"),
            5s));
    }
    SECTION("refused upgrades never reach the server") {
        CHECK(env.run_client("mt_" + std::string(32, 'x')) == "status 401");
        CHECK(env.run_client("") == "status 401");
        CHECK(env.server.opened().empty());
        raw_ws c(env.proxy->port());
        const auto head = c.handshake("/ws/echo", "");
        CHECK(head.rfind("HTTP/1.1 401", 0) == 0);
        CHECK(head.find("Connection: close") != std::string::npos);
        CHECK(c.closed_within(5s));
    }
    SECTION("an upstream answer other than 101 is relayed as a response, no tunnel") {
        CHECK(env.run_client(token, "ws/deny") == "status 403");
        CHECK(env.tunnels() == 0);
    }
}

TEST_CASE("websocket: closes and drops propagate both ways within a second", "[it][websocket]") {
    ws_env env;
    const std::string token = env.mint();
    raw_ws c(env.proxy->port());
    const auto head = c.handshake("/ws/echo", token);
    REQUIRE(head.rfind("HTTP/1.1 101", 0) == 0);
    CHECK(head.find("Upgrade: websocket") != std::string::npos);
    CHECK(head.find("Connection: upgrade") != std::string::npos);
    CHECK(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos);
    c.send_all(client_frame(1, "ping-through"));
    CHECK(c.read_until(
        [](const std::string& d) {
            return d.find(server_text("ping-through")) != std::string::npos;
        },
        5s));
    CHECK(env.tunnels() == 1);

    SECTION("the client drops the TCP connection: the server sees it closed") {
        c.close();
        CHECK(env.server.wait_closed(1, 1s));
    }
    SECTION("the server drops the TCP connection: the client sees it closed") {
        c.send_all(client_frame(1, "drop-me"));
        CHECK(c.closed_within(1s));
    }
    SECTION("a clean close handshake started by the server") {
        c.send_all(client_frame(1, "close-me"));
        // The server's close frame (opcode 8, code 4000) comes through; the client answers it and
        // the server then closes the TCP connection, which reaches the client.
        CHECK(c.read_until([](const std::string& d) { return d.find('\x88') != std::string::npos; },
                           5s));
        c.send_all(client_frame(8, std::string("\x0f\xa0", 2)));
        CHECK(c.closed_within(1s));
    }
    CHECK(eventually([&] { return env.tunnels() == 0; }, 5s));
    CHECK(env.proxy->proc().running());
}

TEST_CASE("websocket: idle tunnels and tunnels past their lifetime are closed", "[it][websocket]") {
    SECTION("tunnel_idle_timeout") {
        ws_env env("  tunnel_idle_timeout: 300ms\n");
        raw_ws c(env.proxy->port());
        REQUIRE(c.handshake("/ws/echo", env.mint()).rfind("HTTP/1.1 101", 0) == 0);
        const auto t0 = steady::now();
        CHECK(c.closed_within(5s));
        CHECK(steady::now() - t0 >= 250ms);
        CHECK(env.server.wait_closed(1, 5s));
    }
    SECTION("tunnel_max_lifetime, even with traffic") {
        ws_env env("  tunnel_max_lifetime: 600ms\n");
        raw_ws c(env.proxy->port());
        REQUIRE(c.handshake("/ws/echo", env.mint()).rfind("HTTP/1.1 101", 0) == 0);
        const auto t0 = steady::now();
        bool closed = false;
        while (!closed && steady::now() - t0 < 5s) {
            c.send_all(client_frame(1, "keep-busy"));
            closed = c.closed_within(100ms);
        }
        CHECK(closed);
        CHECK(steady::now() - t0 >= 550ms);
    }
    SECTION("the token's expiration, even with traffic") {
        ws_env env;
        const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        const std::string token = env.mint({{"expiration_ms", now_ms + 1500}});
        raw_ws c(env.proxy->port());
        REQUIRE(c.handshake("/ws/echo", token).rfind("HTTP/1.1 101", 0) == 0);
        const auto t0 = steady::now();
        bool closed = false;
        while (!closed && steady::now() - t0 < 6s) {
            c.send_all(client_frame(1, "keep-busy"));
            closed = c.closed_within(100ms);
        }
        CHECK(closed);
        CHECK(steady::now() - t0 >= 1s);
        CHECK(eventually([&] { return env.tunnels() == 0; }, 5s));
    }
    SECTION("other upgrades (h2c) are stripped, the request goes on as a plain one") {
        ws_env env;
        raw_ws c(env.proxy->port());
        c.send_all(
            "GET /ws/echo HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, "
            "HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nAuthorization: "
            "Bearer " +
            env.mint() + "\r\n\r\n");
        // The websockets server answers a request without Upgrade: websocket with 426.
        CHECK(c.read_until(
            [](const std::string& d) { return d.find("\r\n\r\n") != std::string::npos; }, 5s));
        CHECK(c.received().rfind("HTTP/1.1 426", 0) == 0);
        CHECK(env.tunnels() == 0);
    }
}

TEST_CASE("websocket: SIGTERM with an open tunnel exits 0 within the drain time",
          "[it][websocket]") {
    ws_env env;
    raw_ws c(env.proxy->port());
    REQUIRE(c.handshake("/ws/echo", env.mint()).rfind("HTTP/1.1 101", 0) == 0);
    REQUIRE(env.tunnels() == 1);
    const auto t0 = steady::now();
    env.proxy->proc().signal(SIGTERM);
    const auto code = env.proxy->proc().wait_exit(10s);
    REQUIRE(code);
    CHECK(*code == 0);
    CHECK(steady::now() - t0 < 5s);  // drain_timeout 1s, then both connections are closed
    CHECK(c.closed_within(2s));
    CHECK(env.server.wait_closed(1, 2s));
}
