// Forward-auth mode (`mode: forward_auth`, issue #15) through the real binaries: the proxy
// answers check requests directly, and behind real gateways — Debian's nginx (auth_request) and
// Caddy (forward_auth) — each started privately on loopback (own config and temp dir, free
// ports, stopped by PID) with the configuration files the README documents
// (docs/gateways/nginx.conf, docs/gateways/Caddyfile), in front of the recording upstream.
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>

using namespace clerk::it;
using json = nlohmann::json;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

/// Replaces every occurrence of `from` (which must occur) by `to`.
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    const auto first = s.find(from);
    if (first == std::string::npos) {
        throw std::runtime_error("gateway config lacks \"" + from + "\"");
    }
    for (auto at = first; at != std::string::npos; at = s.find(from, at + to.size())) {
        s.replace(at, from.size(), to);
    }
    return s;
}

bool accepts_connections(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (fd >= 0) {
        ::close(fd);
    }
    return ok;
}

std::string find_binary(const std::vector<std::string>& candidates) {
    for (const auto& c : candidates) {
        if (::access(c.c_str(), X_OK) == 0) {
            return c;
        }
    }
    FAIL("none of these is installed: " << candidates.front()
                                        << " (scripts/install-deps.sh test installs it)");
    return {};
}

/// The emulator with machine "a" (no scopes) and "c" (scopes [a]), and its token knob.
struct clerk_side {
    clerk_side() : emu({"a"}), knobs(emu.port()) {
        auto c = post("/__emulator/machines", {{"name", "c"}, {"scopes", {a_id()}}});
        c_id = c["id"].get<std::string>();
    }
    json post(const std::string& path, const json& body) {
        auto r = knobs.request("POST", path, {{"Content-Type", "application/json"}}, body.dump());
        INFO(path << " -> " << r.status << " " << r.body);
        REQUIRE(r.status / 100 == 2);
        return json::parse(r.body);
    }
    std::string a_id() const { return emu.machines().at(0).id; }
    std::string mint(const std::string& machine) {
        return post("/__emulator/tokens", {{"machine_id", machine}})["token"].get<std::string>();
    }
    /// Every verify call fails with HTTP `status` until healed.
    void fail_verify(int status) {
        post("/__emulator/fail",
             {{"count", 1000000}, {"mode", "status"}, {"status", status}, {"endpoint", "verify"}});
    }

    emulator_process emu;
    http_client knobs;
    std::string c_id;
};

/// clerk-m2m-proxy in forward_auth mode; /healthz is auth: none, /admin/* needs scope "admin".
std::string forward_auth_config(const std::string& api_url, const std::string& extra = {}) {
    return "mode: forward_auth\n"
           "listen: \"127.0.0.1:0\"\n"
           "clerk:\n  api_url: \"" +
           api_url + "\"\n  secret_key: \"" + instance_key +
           "\"\n  timeout: 500ms\n  retries: 0\n"
           "routes:\n"
           "  - path: /healthz\n    auth: none\n"
           "  - path: /admin/*\n    require_scopes: [admin]\n"
           "admin:\n  listen: \"127.0.0.1:0\"\n"
           "log:\n  level: info\n  format: json\n  access_log: true\n"
           "threads: 2\n" +
           extra;
}

/// A gateway started privately from a documented config file.
class gateway {
public:
    /// nginx from docs/gateways/nginx.conf (a server block), wrapped in a minimal main config
    /// whose paths are all in `dir`; single process (master_process off), stopped by PID.
    static std::unique_ptr<gateway> nginx(const temp_dir& dir, std::uint16_t auth_port,
                                          std::uint16_t app_port) {
        const auto bin = find_binary({"/usr/sbin/nginx", "/usr/bin/nginx"});
        const auto doc = read_file(std::string(CLERK_SOURCE_DIR) + "/docs/gateways/nginx.conf");
        return start([&](std::uint16_t port) {
            auto server =
                replace_all(doc, "listen 8000;", "listen 127.0.0.1:" + std::to_string(port) + ";");
            server =
                replace_all(server, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(auth_port));
            server = replace_all(server, "127.0.0.1:3000", "127.0.0.1:" + std::to_string(app_port));
            const auto d = dir.path().string();
            dir.write("server.conf", server);
            const auto main_conf = dir.write(
                "nginx.conf", "events {}\nhttp {\n  access_log off;\n  client_body_temp_path " + d +
                                  "/body;\n  proxy_temp_path " + d + "/proxy;\n" +
                                  "  fastcgi_temp_path " + d + "/fastcgi;\n  uwsgi_temp_path " + d +
                                  "/uwsgi;\n  scgi_temp_path " + d + "/scgi;\n  include " + d +
                                  "/server.conf;\n}\n");
            return std::make_unique<process>(
                bin,
                std::vector<std::string>{"-p", d, "-c", main_conf, "-g",
                                         "daemon off; master_process off; pid " + d +
                                             "/nginx.pid; error_log " + d + "/error.log info;"});
        });
    }

    /// Caddy from docs/gateways/Caddyfile, its admin endpoint off and its data in `dir`.
    static std::unique_ptr<gateway> caddy(const temp_dir& dir, std::uint16_t auth_port,
                                          std::uint16_t app_port) {
        const auto bin = find_binary({"/usr/bin/caddy", "/usr/local/bin/caddy"});
        const auto doc = read_file(std::string(CLERK_SOURCE_DIR) + "/docs/gateways/Caddyfile");
        return start([&](std::uint16_t port) {
            auto conf = replace_all(doc, "auto_https off", "auto_https off\n\tadmin off");
            conf = replace_all(conf, "http://:8000 {",
                               "http://:" + std::to_string(port) + " {\n\tbind 127.0.0.1");
            conf = replace_all(conf, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(auth_port));
            conf = replace_all(conf, "127.0.0.1:3000", "127.0.0.1:" + std::to_string(app_port));
            const auto path = dir.write("Caddyfile", conf);
            const auto d = dir.path().string();
            return std::make_unique<process>(
                bin, std::vector<std::string>{"run", "--config", path, "--adapter", "caddyfile"},
                std::vector<std::pair<std::string, std::string>>{
                    {"HOME", d}, {"XDG_DATA_HOME", d + "/data"}, {"XDG_CONFIG_HOME", d + "/cfg"}});
        });
    }

    ~gateway() {
        if (proc_ && proc_->running()) {
            proc_->signal(SIGTERM);
            proc_->wait_exit(5s);
        }
    }
    std::uint16_t port() const { return port_; }
    std::string output() const { return proc_->output(); }

private:
    template <class Launch>
    static std::unique_ptr<gateway> start(Launch&& launch) {
        std::string last;
        for (int attempt = 0; attempt < 3; ++attempt) {
            auto g = std::make_unique<gateway>();
            g->port_ = free_port();
            g->proc_ = launch(g->port_);
            if (eventually([&] { return accepts_connections(g->port_) || !g->proc_->running(); },
                           10s) &&
                g->proc_->running()) {
                return g;
            }
            last = g->proc_->output();
        }
        FAIL("the gateway did not start:\n" << last);
        return nullptr;
    }

    std::unique_ptr<process> proc_;
    std::uint16_t port_ = 0;

public:
    gateway() = default;
};

/// The X-Clerk-* headers the upstream saw, as "name: value" lines (sorted, lower-case names).
std::vector<std::string> clerk_headers(const recorded_request& r) {
    std::vector<std::string> out;
    for (const auto& [k, v] : r.headers) {
        std::string name = k;
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (name.rfind("x-clerk-", 0) == 0 || name.rfind("x_clerk_", 0) == 0) {
            out.push_back(name + ": " + v);
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

/// Spoofed identity headers a client adds to every request below.
const http_client::header_list spoofed{
    {"X-Clerk-Subject", "mch_spoofed"},    {"X-Clerk-Machine-Id", "mch_spoofed"},
    {"X-Clerk-Scopes", "admin"},           {"X-Clerk-Token-Type", "api_key"},
    {"X-Clerk-Claims", "{\"root\":true}"}, {"X-Clerk-Token-Id", "mt_spoofed"}};

http_client::header_list with(http_client::header_list a, const http_client::header_list& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

/// What every gateway must do with the documented config (`gw` started in front of `up`).
void check_gateway(gateway& gw, recording_upstream& up, clerk_side& clerk, proxy_process& proxy) {
    INFO("gateway output:\n" << gw.output());
    const std::string token = clerk.mint(clerk.c_id);
    http_client c(gw.port());

    SECTION("a valid token: the upstream sees exactly the verified identity") {
        const auto before = up.requests().size();
        const auto r = c.get("/api/items?x=1", with(bearer(token), spoofed));
        REQUIRE(r.status == 200);
        CHECK(r.body == "upstream ok");
        REQUIRE(up.requests().size() == before + 1);
        const auto seen = up.requests().back();
        CHECK(seen.target == "/api/items?x=1");
        // Every identity header once, with the verified value; "empty" ones either absent or
        // empty (nginx drops them, Caddy sends them empty): never a client's copy.
        const auto h = clerk_headers(seen);
        INFO("identity headers at the upstream:\n" << Catch::Detail::stringify(h));
        CHECK(seen.header("X-Clerk-Subject") == clerk.c_id);
        CHECK(seen.count("X-Clerk-Subject") == 1);
        CHECK(seen.header("X-Clerk-Machine-Id") == clerk.c_id);
        CHECK(seen.count("X-Clerk-Machine-Id") == 1);
        CHECK(seen.header("X-Clerk-Token-Type") == "m2m_token");
        CHECK(seen.count("X-Clerk-Token-Type") == 1);
        CHECK(seen.header("X-Clerk-Scopes") == clerk.a_id());
        CHECK(seen.count("X-Clerk-Scopes") == 1);
        CHECK(seen.header("X-Clerk-Token-Id").rfind("mt_", 0) == 0);
        CHECK(seen.header("X-Clerk-Token-Id") != "mt_spoofed");
        CHECK(seen.count("X-Clerk-Claims") <= 1);
        CHECK(seen.header("X-Clerk-Claims").empty());  // the token has no custom claims
        for (const auto& line : h) {
            CHECK(line.find("spoofed") == std::string::npos);
            CHECK(line.find("root") == std::string::npos);
        }
        CHECK(seen.header("Authorization") == "Bearer " + token);  // the gateway's choice
    }
    SECTION("a token of a machine without scopes: the spoofed scopes do not survive") {
        const std::string plain = clerk.mint(clerk.a_id());
        const auto before = up.requests().size();
        const auto r = c.get("/api/items", with(bearer(plain), spoofed));
        REQUIRE(r.status == 200);
        REQUIRE(up.requests().size() == before + 1);
        const auto seen = up.requests().back();
        CHECK(seen.header("X-Clerk-Subject") == clerk.a_id());
        CHECK(seen.header("X-Clerk-Scopes").empty());
    }
    SECTION("a request body goes to the upstream, never to the check") {
        const std::string body(100 * 1024, 'b');
        const auto before = up.requests().size();
        const auto r = c.request("POST", "/api/upload",
                                 with(bearer(token), {{"Content-Type", "text/plain"}}), body);
        REQUIRE(r.status == 200);
        REQUIRE(up.requests().size() == before + 1);
        CHECK(up.requests().back().method == "POST");
        CHECK(up.requests().back().body_size == body.size());
        CHECK(up.requests().back().body_sha256 == sha256_hex(body));
    }
    SECTION("refusals: nothing reaches the upstream") {
        const auto before = up.requests().size();
        const auto missing = c.get("/api/items");
        CHECK(missing.status == 401);
        CHECK(missing.header("WWW-Authenticate").find("Bearer") != std::string::npos);
        const auto bad = c.get("/api/items", bearer("mt_" + std::string(32, 'x')));
        CHECK(bad.status == 401);
        CHECK(bad.header("WWW-Authenticate").find("invalid_token") != std::string::npos);
        const auto scope = c.get("/admin/panel", bearer(token));
        CHECK(scope.status == 403);
        const auto escape = c.get("/api/%2e%2e/%2e%2e/etc", bearer(token));
        CHECK(escape.status / 100 == 4);
        CHECK(up.requests().size() == before);
    }
    SECTION("auth: none route: passes, with no identity and no spoofed copy") {
        const auto before = up.requests().size();
        const auto r = c.get("/healthz", spoofed);
        REQUIRE(r.status == 200);
        REQUIRE(up.requests().size() == before + 1);
        for (const auto& line : clerk_headers(up.requests().back())) {
            INFO(line);
            CHECK(line.back() == ' ');  // "x-clerk-...: " with an empty value
        }
    }
    SECTION("Clerk down: 503 with Retry-After, nothing reaches the upstream") {
        clerk.fail_verify(500);
        const auto before = up.requests().size();
        const auto r = c.get("/api/items", bearer(clerk.mint(clerk.c_id)));
        CHECK(r.status == 503);
        CHECK(r.header("Retry-After") == "1");
        CHECK(up.requests().size() == before);
    }
    // The proxy saw the original requests: its access log names their paths, not the check's.
    CHECK(proxy.proc().output().find("/_clerk_auth") == std::string::npos);
}

}  // namespace

TEST_CASE("forward-auth: check requests answered directly", "[it][forward_auth]") {
    temp_dir dir;
    clerk_side clerk;
    proxy_process proxy(dir, forward_auth_config(clerk.emu.url()));
    const std::string token = clerk.mint(clerk.c_id);
    http_client c(proxy.port());

    SECTION("allowed: 200, empty body, the identity, no-store") {
        const auto r = c.get("/ignored", with(bearer(token), {{"X-Forwarded-Method", "GET"},
                                                              {"X-Forwarded-Uri", "/api/x?y=1"},
                                                              {"X-Clerk-Subject", "mch_spoofed"}}));
        CHECK(r.status == 200);
        CHECK(r.body.empty());
        CHECK(r.header("Cache-Control") == "no-store");
        CHECK(r.header("X-Clerk-Subject") == clerk.c_id);
        CHECK(r.count("X-Clerk-Subject") == 1);
        CHECK(r.header("X-Clerk-Token-Type") == "m2m_token");
        CHECK_FALSE(r.header("X-Request-Id").empty());
        CHECK(r.keep_alive);
    }
    SECTION("the original method and URI decide the route") {
        // /admin/* needs scope "admin": the X-Original-URI says /admin, the line says /.
        const auto r = c.get("/", with(bearer(token), {{"X-Original-URI", "/admin/x"},
                                                       {"X-Original-Method", "POST"}}));
        CHECK(r.status == 403);
        CHECK(r.header("Cache-Control") == "no-store");
        // X-Forwarded-* wins over X-Original-*.
        const auto f = c.get("/", {{"X-Forwarded-Uri", "/healthz"}, {"X-Original-URI", "/api"}});
        CHECK(f.status == 200);
        // No family: the request line (Envoy ext_authz).
        CHECK(c.get("/healthz").status == 200);
        CHECK(c.get("/api/x").status == 401);
    }
    SECTION("a traversal or ambiguous original URI is a 400") {
        CHECK(c.get("/", with(bearer(token), {{"X-Forwarded-Uri", "/a/../../etc"}})).status == 400);
        CHECK(c.get("/", with(bearer(token),
                              {{"X-Forwarded-Uri", "/a"}, {"X-Forwarded-Uri", "/healthz"}}))
                  .status == 400);
    }
    SECTION("a check with a body: answered without reading it, then closed") {
        const auto r = c.request("POST", "/healthz", {}, std::string(1000, 'x'));
        CHECK(r.status == 200);
        CHECK_FALSE(r.keep_alive);
    }
    SECTION("HEAD check of a GET: a head-only answer, the connection stays usable") {
        c.send_raw(
            "HEAD /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-Uri: /healthz\r\n"
            "X-Forwarded-Method: GET\r\n\r\n");
        CHECK(c.read_response(true).status == 200);
        c.send_raw(
            "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-Uri: /api\r\n"
            "X-Forwarded-Method: HEAD\r\n\r\n");
        const auto r = c.read_response(false);
        CHECK(r.status == 401);
        CHECK_FALSE(r.body.empty());
    }
}

TEST_CASE("forward-auth: behind real nginx (auth_request)", "[it][forward_auth][nginx]") {
    temp_dir dir;
    clerk_side clerk;
    recording_upstream up;
    proxy_process proxy(dir, forward_auth_config(clerk.emu.url()));
    auto gw = gateway::nginx(dir, proxy.port(), up.port());
    check_gateway(*gw, up, clerk, proxy);
}

TEST_CASE("forward-auth: behind real Caddy (forward_auth)", "[it][forward_auth][caddy]") {
    temp_dir dir;
    clerk_side clerk;
    recording_upstream up;
    proxy_process proxy(dir, forward_auth_config(clerk.emu.url()));
    auto gw = gateway::caddy(dir, proxy.port(), up.port());
    check_gateway(*gw, up, clerk, proxy);
}
