// The security regression suite of issue #7 item 4, through the real binaries on 127.0.0.1 port 0:
// request smuggling, path confusion, identity header spoofing, oversized and duplicated headers,
// slowloris, cache flooding, tokens in the query string and secrets in logs. Every case asserts
// what the upstream received (exact target, headers and body), or that it received nothing, and
// the status the client got. Waits are conditions with deadlines; the only pauses are the
// deliberate dribbles of the slowloris cases.
#include "clerk_knobs.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <sstream>
#include <thread>

using namespace clerk::it;
using json = nlohmann::json;

namespace {

constexpr const char* smuggled = "GET /public/smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

json body_json(const http_response& r) {
    try {
        return json::parse(r.body);
    } catch (const std::exception&) {
        return json::object();
    }
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

/// A header name as WSGI/CGI-style upstreams see it: lower case, '_' read as '-'.
std::string cgi_name(std::string s) {
    s = lower(std::move(s));
    std::replace(s.begin(), s.end(), '_', '-');
    return s;
}

/// The names of `seen` that an identity header could hide behind (any X-Clerk-* or the
/// claims_to_headers target X-Tenant-Id, in any case, '_' or '-').
std::vector<std::string> identity_like(const recorded_request& seen) {
    std::vector<std::string> out;
    for (const auto& [k, v] : seen.headers) {
        const auto n = cgi_name(k);
        if (n.rfind("x-clerk-", 0) == 0 || n == "x-tenant-id") {
            out.push_back(k + ": " + v);
        }
    }
    return out;
}

std::string metrics_text(std::uint16_t admin_port) {
    http_client c(admin_port);
    auto r = c.get("/metrics");
    REQUIRE(r.status == 200);
    return r.body;
}

const std::string hit_series = R"(clerk_proxy_cache_lookups_total{result="hit"})";

/// /public/* is auth: none, /admin/* needs scope `admin_scope`, everything else needs a token.
/// `api_url` "" points Clerk at a closed port. `extra` is appended at top level.
std::string sec_config(const std::string& upstream_url, const std::string& api_url = {},
                       const std::string& admin_scope = "mch_admin",
                       const std::string& extra = {}) {
    std::string y = "listen: \"127.0.0.1:0\"\n";
    y += "upstream:\n  url: \"" + upstream_url + "\"\n  timeout: 10s\n";
    y += "clerk:\n  api_url: \"" + (api_url.empty() ? std::string("http://127.0.0.1:1") : api_url) +
         "\"\n  secret_key: \"" + instance_key + "\"\n  timeout: 1s\n  retries: 0\n";
    y += "admin:\n  listen: \"127.0.0.1:0\"\n";
    y += "headers:\n  claims_to_headers:\n    tenant: X-Tenant-Id\n";
    y += "routes:\n  - path: /public/*\n    auth: none\n  - path: /admin/*\n    require_scopes: [" +
         admin_scope + "]\n";
    y += extra;
    return y;
}

/// The emulator with machines a, b and c (c's tokens carry scopes [a, b]; /admin/* needs a).
struct clerk_env {
    clerk_env() : emu({"a", "b"}), knobs(emu.port()) {
        auto c = knobs.post(
            "/__emulator/machines",
            {{"name", "c"}, {"scopes", {emu.machines().at(0).id, emu.machines().at(1).id}}});
        c_id = c["id"].get<std::string>();
        auto lonely =
            knobs.post("/__emulator/machines", {{"name", "lonely"}, {"scopes", json::array()}});
        lonely_id = lonely["id"].get<std::string>();
    }
    const std::string& a_id() const { return emu.machines().at(0).id; }
    const std::string& b_id() const { return emu.machines().at(1).id; }
    std::string config(const std::string& extra = {}) const {
        return sec_config(up.url(), emu.url(), a_id(), extra);
    }

    temp_dir dir;
    emulator_process emu;
    recording_upstream up;
    clerk_knobs knobs;
    std::string c_id;
    std::string lonely_id;  ///< a machine without scopes
};

http_client::options short_timeout() {
    http_client::options o;
    o.timeout = 5s;
    return o;
}

/// Sends `bytes` on a fresh connection and reads one response.
http_response raw_exchange(std::uint16_t port, const std::string& bytes) {
    http_client c(port, short_timeout());
    c.send_raw(bytes);
    return c.read_response();
}

/// A refused request: 400 bad_request, Connection: close, and the proxy closes the connection.
void check_refused_and_closed(http_client& c, const std::string& bytes) {
    c.send_raw(bytes);
    const auto r = c.read_response();
    INFO(r.body);
    CHECK(r.status == 400);
    CHECK(body_json(r)["error"] == "bad_request");
    CHECK(r.header("Content-Type") == "application/json");
    CHECK_FALSE(r.keep_alive);
    CHECK(c.closed_by_peer());
}

/// After an attack: a fresh request goes through, and it is the only one the upstream ever got.
/// The attack connection is closed by then, so nothing it carried can be forwarded later.
void check_only_sentinel_forwarded(const proxy_process& proxy, const recording_upstream& up) {
    http_client s(proxy.port(), short_timeout());
    CHECK(s.get("/public/sentinel").status == 200);
    REQUIRE(up.wait_for_requests(1));
    const auto seen = up.requests();
    CHECK(seen.size() == 1);
    CHECK(seen.at(0).target == "/public/sentinel");
    CHECK(up.heads_received() == 1);
}

/// A raw upstream on 127.0.0.1:0 that keeps every request's exact bytes (head, chunked framing
/// and trailers included) and answers 200 "ok" with Connection: close.
class raw_upstream {
public:
    raw_upstream() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd_, 16) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { loop(); });
    }
    ~raw_upstream() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    raw_upstream(const raw_upstream&) = delete;
    raw_upstream& operator=(const raw_upstream&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::vector<std::string> requests() const {
        std::lock_guard lock(mu_);
        return requests_;
    }

private:
    static bool complete(const std::string& data) {
        const auto head_end = data.find("\r\n\r\n");
        if (head_end == std::string::npos) {
            return false;
        }
        const std::string head = lower(data.substr(0, head_end));
        const std::string body = data.substr(head_end + 4);
        if (head.find("transfer-encoding: chunked") != std::string::npos) {
            const bool last_chunk =
                body.rfind("0\r\n", 0) == 0 || body.find("\r\n0\r\n") != std::string::npos;
            return last_chunk && body.size() >= 4 && body.substr(body.size() - 4) == "\r\n\r\n";
        }
        const auto cl = head.find("content-length: ");
        if (cl == std::string::npos) {
            return true;
        }
        return body.size() >= std::stoull(head.substr(cl + 16));
    }

    void loop() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) {
                continue;
            }
            const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) {
                continue;
            }
            std::string data;
            char buf[4096];
            const auto deadline = std::chrono::steady_clock::now() + 5s;
            while (!complete(data) && std::chrono::steady_clock::now() < deadline) {
                pollfd q{c, POLLIN, 0};
                if (::poll(&q, 1, 50) <= 0) {
                    continue;
                }
                const auto n = ::read(c, buf, sizeof buf);
                if (n <= 0) {
                    break;
                }
                data.append(buf, static_cast<std::size_t>(n));
            }
            {
                std::lock_guard lock(mu_);
                requests_.push_back(data);
            }
            static constexpr std::string_view ok =
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            [[maybe_unused]] const auto w = ::send(c, ok.data(), ok.size(), MSG_NOSIGNAL);
            ::close(c);
        }
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    mutable std::mutex mu_;
    std::vector<std::string> requests_;
    std::thread thread_;
};

/// Case variants of a header name: as written, lower, upper, alternating, and with '_' for '-'.
std::vector<std::string> name_variants(const std::string& name) {
    std::string alt = name;
    for (std::size_t i = 0; i < alt.size(); ++i) {
        const auto c = static_cast<unsigned char>(alt[i]);
        alt[i] = static_cast<char>(i % 2 == 0 ? std::toupper(c) : std::tolower(c));
    }
    std::string underscore = name;
    std::replace(underscore.begin(), underscore.end(), '-', '_');
    std::string upper = name;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return {name, lower(name), upper, alt, underscore, lower(underscore)};
}

const std::vector<std::string> identity_names{
    "X-Clerk-Subject",  "X-Clerk-Machine-Id", "X-Clerk-Scopes",      "X-Clerk-Claims",
    "X-Clerk-Token-Id", "X-Clerk-Token-Type", "X-Clerk-Impersonate", "X-Tenant-Id"};

/// Spoofed identity header lines in every case and spacing variant (values with leading and
/// trailing blanks and tabs); every value contains "spoof".
std::string spoofed_header_lines() {
    std::string out;
    int i = 0;
    for (const auto& name : identity_names) {
        for (const auto& v : name_variants(name)) {
            switch (i++ % 4) {
                case 0:
                    out += v + ": spoof" + std::to_string(i) + "\r\n";
                    break;
                case 1:
                    out += v + ":    spoof" + std::to_string(i) + "   \r\n";
                    break;
                case 2:
                    out += v + ":\tspoof" + std::to_string(i) + "\t\r\n";
                    break;
                default:
                    out += v + ":spoof" + std::to_string(i) + "\r\n";
                    break;
            }
        }
    }
    return out;
}

}  // namespace

// --- request smuggling

TEST_CASE("security: CL.TE smuggling is refused and the smuggled request never reaches upstream",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    const std::string body = std::string("0\r\n\r\n") + smuggled;
    http_client c(proxy.port(), short_timeout());
    check_refused_and_closed(
        c, "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\nTransfer-Encoding: chunked\r\n\r\n" + body);
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: TE.CL smuggling is refused and the smuggled request never reaches upstream",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    const std::string chunk = std::string(smuggled);
    std::ostringstream size;
    size << std::hex << chunk.size();
    const std::string body = size.str() + "\r\n" + chunk + "\r\n0\r\n\r\n";
    // Transfer-Encoding first, then Content-Length; and obfuscated Transfer-Encoding spellings.
    const std::vector<std::string> te_lines{
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding:\tchunked\r\n",
        "transfer-encoding: CHUNKED\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        "Transfer-Encoding: xchunked\r\n",
    };
    for (const auto& te : te_lines) {
        INFO(te);
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(
            c, "POST /public/x HTTP/1.1\r\nHost: a\r\n" + te + "Content-Length: 4\r\n\r\n" + body);
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: differing duplicate Content-Length is refused", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    const std::vector<std::string> cls{
        "Content-Length: 5\r\nContent-Length: 47\r\n",
        "Content-Length: 47\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 47\r\n",
        "Content-Length: 5\r\ncontent-length: 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: 5 5\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 99999999999999999999999\r\n",
    };
    for (const auto& cl : cls) {
        INFO(cl);
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(
            c, "POST /public/x HTTP/1.1\r\nHost: a\r\n" + cl + "\r\nhello" + smuggled);
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

// RFC 9112 §6.3 (5) / RFC 9110 §8.6: a recipient may accept a Content-Length list or repeated
// field whose values are all the same, as one length. docs/reference.md §5 refuses only an invalid
// one.
TEST_CASE("security: agreeing duplicate Content-Length is forwarded as exactly one",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    http_client c(proxy.port(), short_timeout());
    c.send_raw(
        "POST /public/dup HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: "
        "5\r\n\r\nhello");
    const auto r = c.read_response();
    CHECK(r.status == 200);
    CHECK(r.keep_alive);
    c.send_raw("POST /public/list HTTP/1.1\r\nHost: a\r\nContent-Length: 6, 6\r\n\r\nhello!");
    CHECK(c.read_response().status == 200);
    CHECK(c.get("/public/after").status == 200);  // the connection is still in sync
    REQUIRE(up.wait_for_requests(3));
    const auto seen = up.requests();
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].target == "/public/dup");
    CHECK(seen[0].count("Content-Length") == 1);
    CHECK(seen[0].header("Content-Length") == "5");
    CHECK(seen[0].body_size == 5);
    CHECK(seen[0].body_sha256 == sha256_hex("hello"));
    CHECK(seen[1].count("Content-Length") == 1);
    CHECK(seen[1].header("Content-Length") == "6");
    CHECK(seen[1].body_sha256 == sha256_hex("hello!"));
    CHECK(seen[2].target == "/public/after");
    CHECK(seen[2].body_size == 0);
}

// RFC 9112 §5.2: obs-fold is either refused with 400 or replaced by SP before forwarding. The
// proxy (Beast) replaces it: the upstream must see one header per folded line, never a new line.
TEST_CASE("security: obs-fold is unfolded into one value and never splits a header",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    http_client c(proxy.port(), short_timeout());
    c.send_raw(
        "GET /public/fold HTTP/1.1\r\nHost: a\r\nX-Note: first\r\n second\r\n"
        "X-Innocent: a\r\n X-Clerk-Subject: mch_folded\r\n"
        "X-Clerk-Scopes: mch_spoof\r\n\tcontinued\r\n\r\n");
    const auto r = c.read_response();
    CHECK(r.status == 200);
    REQUIRE(up.wait_for_requests(1));
    const auto seen = up.requests().at(0);
    CHECK(seen.target == "/public/fold");
    CHECK(seen.count("X-Note") == 1);
    CHECK(seen.header("X-Note") == "first second");
    CHECK(seen.count("X-Innocent") == 1);
    CHECK(seen.header("X-Innocent") == "a X-Clerk-Subject: mch_folded");
    CHECK(identity_like(seen).empty());

    // A folded framing header cannot become a valid one.
    http_client f(proxy.port(), short_timeout());
    check_refused_and_closed(
        f, "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n 0\r\n\r\n0123456789");
    http_client t(proxy.port(), short_timeout());
    check_refused_and_closed(t,
                             "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                             " , identity\r\n\r\n0\r\n\r\n");
    CHECK(up.heads_received() == 1);
}

TEST_CASE("security: bare LF line endings are never forwarded", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir,
                        sec_config(up.url(), {}, "mch_admin", "limits:\n  header_timeout: 1s\n"));
    // A bare LF inside the head: the next "line" is part of a field value, which is refused.
    for (const std::string head :
         {"GET /public/x HTTP/1.1\r\nHost: a\nX-Clerk-Subject: spoof\r\n\r\n",
          "GET /public/x HTTP/1.1\r\nX-A: b\nHost: c\r\n\r\n",
          "POST /public/x HTTP/1.1\r\nHost: a\r\nX-A: 1\nContent-Length: 5\r\n\r\nhello"}) {
        INFO(head);
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(c, head);
    }
    // Only bare LFs: refused as malformed at once (not left to header_timeout), and the second
    // request behind it is never read.
    http_client lf(proxy.port(), short_timeout());
    check_refused_and_closed(
        lf, "GET /public/x HTTP/1.1\nHost: a\n\nGET /public/y HTTP/1.1\nHost: a\n\n");
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: Transfer-Encoding chunked then identity is refused", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    for (const std::string te : {"chunked, identity", "identity, chunked", "chunked, chunked",
                                 "gzip, chunked", "identity", "chunked;q=1"}) {
        INFO(te);
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(c, "POST /public/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " +
                                        te + "\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + smuggled);
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: pipelined request after a refused smuggling attempt is never forwarded",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    // A good request first, then the attack and the smuggled request in one write: the good one
    // is forwarded, the attack refused, the connection closed, and nothing after it is read.
    http_client c(proxy.port(), short_timeout());
    const std::string attack = std::string("GET /public/first HTTP/1.1\r\nHost: a\r\n\r\n") +
                               "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
                               smuggled + smuggled;
    c.send_raw(attack);
    CHECK(c.read_response().status == 200);
    const auto refused = c.read_response();
    CHECK(refused.status == 400);
    CHECK_FALSE(refused.keep_alive);
    const std::string rest = c.read_until_close();
    CHECK(rest.empty());  // no response for the smuggled requests
    REQUIRE(up.wait_for_requests(1));
    http_client s(proxy.port(), short_timeout());
    CHECK(s.get("/public/sentinel").status == 200);
    REQUIRE(up.wait_for_requests(2));
    const auto seen = up.requests();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].target == "/public/first");
    CHECK(seen[1].target == "/public/sentinel");
    CHECK(up.heads_received() == 2);
}

// --- path confusion

TEST_CASE("security: path confusion is refused or forwarded as exactly the path the rules saw",
          "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir, env.config());
    const std::string admin_token = env.knobs.mint(env.c_id)["token"];       // scopes [a, b]
    const std::string plain_token = env.knobs.mint(env.lonely_id)["token"];  // no scopes

    struct row {
        std::string target;
        std::string token;  // "admin", "plain" or ""
        int status;
        std::string forwarded;  // the exact upstream target when 200, else ""
        std::string reason;     // the 400 reason, when status is 400
    };
    const std::vector<row> rows{
        // encoded '/' and '\'
        {"/public/..%2fadmin/x", "", 400, "", "encoded_slash"},
        {"/public/..%2Fadmin/x", "admin", 400, "", "encoded_slash"},
        {"/public/..%5cadmin/x", "", 400, "", "encoded_backslash"},
        {"/public/..%5Cadmin/x", "", 400, "", "encoded_backslash"},
        {"/public/..\\admin/x", "", 400, "", "encoded_backslash"},
        {"/public\\..\\admin", "", 400, "", "encoded_backslash"},
        // encoded dot segments resolve before matching: /admin/* applies
        {"/public/%2e%2e/admin/x", "", 401, "", ""},
        {"/public/%2E%2E/admin/x", "plain", 403, "", ""},
        {"/public/.%2e/admin/x", "admin", 200, "/admin/x", ""},
        {"/public/%2e%2e/%2e%2e/admin", "", 400, "", "escapes_root"},
        {"/%61dmin/x", "plain", 403, "", ""},
        {"//admin//x", "", 401, "", ""},
        {"/public/./../admin/x?q=%2e%2e", "admin", 200, "/admin/x?q=%2e%2e", ""},
        // ';' path parameters: servlet containers read "..;" as ".." and "admin;x=1" as "admin"
        {"/public/..;/admin/x", "", 400, "", "ambiguous_path"},
        {"/public/..;/admin/x", "admin", 400, "", "ambiguous_path"},
        {"/public/.;/x", "", 200, "/public/.;/x", ""},
        {"/admin;x=1/x", "plain", 400, "", "ambiguous_path"},
        {"/admin;x=1", "plain", 400, "", "ambiguous_path"},
        {"/public;x=1/y", "", 400, "", "ambiguous_path"},
        {"/admin/x;jsessionid=1", "plain", 403, "", ""},
        {"/admin/x;jsessionid=1", "admin", 200, "/admin/x;jsessionid=1", ""},
        {"/public/x;v=1", "", 200, "/public/x;v=1", ""},
        {"/api/x;v=1", "plain", 200, "/api/x;v=1", ""},
        // overlong UTF-8 stays escaped: never decoded to '.' or '/'
        {"/public/%c0%ae%c0%ae/admin/x", "", 200, "/public/%C0%AE%C0%AE/admin/x", ""},
        {"/public/..%c0%afadmin/x", "", 200, "/public/..%C0%AFadmin/x", ""},
        {"/public/%e0%80%ae%e0%80%ae/admin", "", 200, "/public/%E0%80%AE%E0%80%AE/admin", ""},
        // double encoding is decoded once only
        {"/public/%252e%252e/admin/x", "", 200, "/public/%252e%252e/admin/x", ""},
        {"/public/..%252fadmin/x", "", 200, "/public/..%252fadmin/x", ""},
        {"/public/%25%32%65%25%32%65/admin", "", 200, "/public/%252e%252e/admin", ""},
    };
    http_client c(proxy.port(), short_timeout());
    std::size_t forwarded = 0;
    for (const auto& r : rows) {
        INFO(r.target << " token=" << r.token);
        http_client::header_list h;
        if (r.token == "admin") {
            h.emplace_back("Authorization", "Bearer " + admin_token);
        } else if (r.token == "plain") {
            h.emplace_back("Authorization", "Bearer " + plain_token);
        }
        // Raw bytes: the client must not touch the target.
        std::string req = "GET " + r.target + " HTTP/1.1\r\nHost: svc\r\n";
        for (const auto& [k, v] : h) {
            req += k + ": " + v + "\r\n";
        }
        http_client one(proxy.port(), short_timeout());
        one.send_raw(req + "\r\n");
        const auto res = one.read_response();
        INFO(res.body);
        CHECK(res.status == r.status);
        if (r.status == 400) {
            CHECK(body_json(res)["error"] == "bad_request");
            CHECK(body_json(res)["reason"] == r.reason);
        }
        const auto seen = env.up.requests();
        if (r.status == 200) {
            ++forwarded;
            REQUIRE(seen.size() == forwarded);
            CHECK(seen.back().target == r.forwarded);
        }
        CHECK(seen.size() == forwarded);
    }
    CHECK(env.up.heads_received() == forwarded);
}

TEST_CASE("security: absolute-form authority-form and asterisk-form targets are refused",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    for (const std::string req :
         {"GET http://evil/admin HTTP/1.1\r\nHost: evil\r\n\r\n",
          "GET http://evil/public/x HTTP/1.1\r\nHost: a\r\n\r\n",
          "GET https://a/public/x HTTP/1.1\r\nHost: a\r\n\r\n",
          "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
          "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
          "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "GET public/x HTTP/1.1\r\nHost: a\r\n\r\n"}) {
        INFO(req);
        const auto r = raw_exchange(proxy.port(), req);
        CHECK(r.status == 400);
        CHECK(body_json(r)["error"] == "bad_request");
        CHECK(body_json(r)["reason"] == "not_origin_form");
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);

    // A refused CONNECT opens no tunnel: the bytes after it are parsed as the next HTTP request
    // and go through every rule like any other (here: a bare /admin request without a token).
    http_client c(proxy.port(), short_timeout());
    c.send_raw(
        "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n"
        "GET /admin/x HTTP/1.1\r\nHost: a\r\n\r\nGET /public/after-connect HTTP/1.1\r\nHost: "
        "a\r\n\r\n");
    CHECK(c.read_response().status == 400);
    const auto admin = c.read_response();
    CHECK(admin.status == 401);
    CHECK(body_json(admin)["error"] == "missing_token");
    CHECK(c.read_response().status == 200);
    REQUIRE(up.wait_for_requests(2));
    CHECK(up.requests().size() == 2);
    CHECK(up.requests().at(1).target == "/public/after-connect");
}

// --- identity header spoofing

TEST_CASE("security: spoofed identity headers never reach the upstream on an auth none route",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    http_client c(proxy.port(), short_timeout());
    c.send_raw("GET /public/spoof HTTP/1.1\r\nHost: a\r\n" + spoofed_header_lines() +
               "X-Keep: kept\r\n\r\n");
    CHECK(c.read_response().status == 200);
    REQUIRE(up.wait_for_requests(1));
    const auto seen = up.requests().at(0);
    CHECK(seen.target == "/public/spoof");
    CHECK(seen.header("X-Keep") == "kept");
    CHECK(identity_like(seen).empty());
    for (const auto& [k, v] : seen.headers) {
        INFO(k << ": " << v);
        CHECK(v.find("spoof") == std::string::npos);
    }
}

TEST_CASE("security: a space or tab before the colon is a 400", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url()));
    const std::vector<std::string> lines{
        "X-Clerk-Subject : spoof\r\n",     "X-Clerk-Subject\t: spoof\r\n",
        "x-clerk-scopes  :a\r\n",          "X-Tenant-Id : t\r\n",
        "Authorization : Bearer mt_x\r\n", "Host : a\r\n",
        "Transfer-Encoding : chunked\r\n", "Content-Length : 5\r\n",
        "X Clerk-Subject: x\r\n",          std::string("X-Clerk-Subject\0: x\r\n", 21)};
    for (const auto& line : lines) {
        INFO(line);
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(c, "GET /public/x HTTP/1.1\r\nHost: a\r\n" + line + "\r\n");
    }
    // A header line starting with whitespace right after the request line (a fold of nothing).
    http_client w(proxy.port(), short_timeout());
    check_refused_and_closed(
        w, "GET /public/x HTTP/1.1\r\n X-Clerk-Subject: spoof\r\nHost: a\r\n\r\n");
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: on an authenticated route only the verified identity reaches the upstream",
          "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir, env.config());
    auto tok = env.knobs.mint(env.c_id, {{"claims", {{"tenant", "t-real"}}}});
    const std::string token = tok["token"];
    http_client c(proxy.port(), short_timeout());
    c.send_raw("GET /admin/who HTTP/1.1\r\nHost: a\r\n" + spoofed_header_lines() +
               "Authorization: Bearer " + token + "\r\n" + spoofed_header_lines() + "\r\n");
    const auto r = c.read_response();
    INFO(r.body);
    CHECK(r.status == 200);
    REQUIRE(env.up.wait_for_requests(1));
    const auto seen = env.up.requests().at(0);
    CHECK(seen.target == "/admin/who");
    const std::vector<std::pair<std::string, std::string>> expected{
        {"X-Clerk-Subject", env.c_id},
        {"X-Clerk-Machine-Id", env.c_id},
        {"X-Clerk-Token-Id", tok["id"].get<std::string>()},
        {"X-Clerk-Token-Type", "m2m_token"},
        {"X-Clerk-Scopes", env.a_id() + "," + env.b_id()},
        {"X-Clerk-Claims", R"({"tenant":"t-real"})"},
        {"X-Tenant-Id", "t-real"},
    };
    // Exactly the injected headers, once each, with the verified values; nothing else that a
    // case- or underscore-folding upstream could read as an identity header.
    std::vector<std::string> want;
    for (const auto& [k, v] : expected) {
        want.push_back(k + ": " + v);
    }
    auto got = identity_like(seen);
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    CHECK(got == want);
    CHECK(seen.count("Authorization") == 0);
}

TEST_CASE("security: Connection naming identity headers neither drops nor admits them",
          "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir, env.config());
    auto tok = env.knobs.mint(env.c_id, {{"claims", {{"tenant", "t-real"}}}});
    const std::string token = tok["token"];
    const std::string conn =
        "Connection: keep-alive, X-Clerk-Subject, x-clerk-scopes, X-Tenant-Id\r\n"
        "Connection: X-Clerk-Machine-Id,X-CLERK-TOKEN-ID , X-Clerk-Claims\r\n";
    const std::string spoof =
        "X-Clerk-Subject: mch_spoof\r\nX-Clerk-Scopes: mch_spoof\r\nX-Tenant-Id: spoof\r\n";
    http_client c(proxy.port(), short_timeout());
    // Authenticated: the injected values survive the Connection list.
    c.send_raw("GET /api/conn HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + token + "\r\n" +
               conn + spoof + "\r\n");
    CHECK(c.read_response().status == 200);
    // auth: none: nothing survives.
    c.send_raw("GET /public/conn HTTP/1.1\r\nHost: a\r\n" + conn + spoof + "\r\n");
    CHECK(c.read_response().status == 200);
    REQUIRE(env.up.wait_for_requests(2));
    const auto seen = env.up.requests();
    const auto& authed = seen.at(0);
    CHECK(authed.count("X-Clerk-Subject") == 1);
    CHECK(authed.header("X-Clerk-Subject") == env.c_id);
    CHECK(authed.count("X-Clerk-Machine-Id") == 1);
    CHECK(authed.header("X-Clerk-Machine-Id") == env.c_id);
    CHECK(authed.count("X-Clerk-Scopes") == 1);
    CHECK(authed.header("X-Clerk-Scopes") == env.a_id() + "," + env.b_id());
    CHECK(authed.count("X-Clerk-Token-Id") == 1);
    CHECK(authed.header("X-Clerk-Token-Id") == tok["id"].get<std::string>());
    CHECK(authed.count("X-Clerk-Claims") == 1);
    CHECK(authed.count("X-Tenant-Id") == 1);
    CHECK(authed.header("X-Tenant-Id") == "t-real");
    CHECK(authed.count("Connection") == 0);
    CHECK(identity_like(seen.at(1)).empty());
    CHECK(seen.at(1).count("Connection") == 0);
}

TEST_CASE("security: chunked trailers never reach the upstream", "[it][security]") {
    clerk_env env;
    raw_upstream raw;
    proxy_process proxy(env.dir, sec_config(raw.url(), env.emu.url(), env.a_id()));
    const std::string token = env.knobs.mint(env.c_id)["token"];
    const std::string trailers =
        "X-Clerk-Subject: mch_trailer_spoof\r\nx-clerk-scopes: mch_trailer_spoof\r\n"
        "X-Tenant-Id: trailer_spoof\r\nX-Clerk-Claims: trailer_spoof\r\n"
        "X-Other: trailer_spoof\r\n\r\n";
    const std::string body = "5\r\nhello\r\n0\r\n" + trailers;
    for (const std::string route : {"/public/trailer", "/api/trailer"}) {
        INFO(route);
        http_client c(proxy.port(), short_timeout());
        c.send_raw("POST " + route +
                   " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                   "Trailer: X-Clerk-Subject, X-Tenant-Id\r\nAuthorization: Bearer " +
                   token + "\r\n\r\n" + body);
        const auto r = c.read_response();
        CHECK(r.status == 200);
    }
    const auto seen = raw.requests();
    REQUIRE(seen.size() == 2);
    for (const auto& bytes : seen) {
        INFO(bytes);
        const std::string l = lower(bytes);
        CHECK(l.find("trailer_spoof") == std::string::npos);
        CHECK(l.find("\r\ntrailer:") == std::string::npos);
        CHECK(l.find("\r\n\r\n5\r\nhello\r\n0\r\n\r\n") != std::string::npos);  // body, no trailers
        CHECK(bytes.substr(bytes.size() - 5) == "0\r\n\r\n");
    }
    CHECK(lower(seen[0]).find("x-clerk-") == std::string::npos);
    // The authenticated one: the verified subject, once.
    const std::string authed = lower(seen[1]);
    const std::string subject_line = "\r\nx-clerk-subject: " + lower(env.c_id) + "\r\n";
    CHECK(authed.find(subject_line) != std::string::npos);
    CHECK(authed.find("x-clerk-subject:") == authed.rfind("x-clerk-subject:"));
}

// --- oversized and duplicated headers

TEST_CASE("security: oversized heads are 431 and nothing is forwarded", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(
        dir, sec_config(up.url(), {}, "mch_admin", "limits:\n  max_header_bytes: 2048\n"));
    std::string many;
    for (int i = 0; i < 200; ++i) {
        many += "X-Clerk-Subject: spoof" + std::to_string(i) + "\r\n";
    }
    const std::vector<std::string> heads{
        "GET /public/x HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nHost: a\r\n" + many + "\r\n",
        "GET /public/" + std::string(4000, 'p') + " HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /api/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer mt_" + std::string(4000, 'x') +
            "\r\n\r\n",
        "POST /public/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Big: " +
            std::string(4000, 'a') + "\r\n\r\nhello" + smuggled,
    };
    for (const auto& head : heads) {
        INFO(head.substr(0, 60));
        http_client c(proxy.port(), short_timeout());
        c.send_raw(head);
        const auto r = c.read_response();
        CHECK(r.status == 431);
        CHECK(body_json(r)["error"] == "headers_too_large");
        CHECK_FALSE(r.keep_alive);
        CHECK(c.closed_by_peer());
    }
    CHECK(up.heads_received() == 0);
    check_only_sentinel_forwarded(proxy, up);
}

TEST_CASE("security: duplicated Authorization Host and identity headers", "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir, env.config());
    const std::string t1 = env.knobs.mint(env.c_id)["token"];
    const std::string t2 = env.knobs.mint(env.c_id)["token"];

    // Two Authorization headers, both valid: 401 invalid_request, no Clerk call, nothing sent.
    for (const auto& second : {t2, t1}) {
        const auto r = raw_exchange(proxy.port(),
                                    "GET /api/x HTTP/1.1\r\nHost: a\r\n"
                                    "Authorization: Bearer " +
                                        t1 + "\r\nauthorization: Bearer " + second + "\r\n\r\n");
        CHECK(r.status == 401);
        CHECK(body_json(r)["error"] == "invalid_request");
        CHECK(r.header("WWW-Authenticate") == R"(Bearer error="invalid_request")");
    }
    CHECK(env.knobs.verify_calls() == 0);

    // Two Host headers (even equal ones): 400.
    for (const std::string hosts : {"Host: a\r\nHost: b\r\n", "Host: a\r\nhost: a\r\n"}) {
        http_client c(proxy.port(), short_timeout());
        check_refused_and_closed(c, "GET /public/x HTTP/1.1\r\n" + hosts + "\r\n");
    }
    CHECK(env.up.heads_received() == 0);

    // Many duplicated X-Clerk-* headers around a valid token: all stripped, one injected each.
    std::string dups;
    for (int i = 0; i < 50; ++i) {
        dups += (i % 2 == 0 ? "X-Clerk-Subject: mch_spoof" : "x-clerk-subject: mch_spoof") +
                std::to_string(i) + "\r\nX-CLERK-SCOPES: mch_spoof\r\nX-Clerk-Extra-" +
                std::to_string(i) + ": spoof\r\n";
    }
    http_client c(proxy.port(), short_timeout());
    c.send_raw("GET /api/dups HTTP/1.1\r\nHost: a\r\n" + dups + "Authorization: Bearer " + t1 +
               "\r\n" + dups + "\r\n");
    CHECK(c.read_response().status == 200);
    REQUIRE(env.up.wait_for_requests(1));
    const auto seen = env.up.requests().at(0);
    CHECK(seen.target == "/api/dups");
    CHECK(seen.count("X-Clerk-Subject") == 1);
    CHECK(seen.header("X-Clerk-Subject") == env.c_id);
    CHECK(seen.count("X-Clerk-Scopes") == 1);
    CHECK(seen.header("X-Clerk-Scopes") == env.a_id() + "," + env.b_id());
    for (const auto& [k, v] : seen.headers) {
        INFO(k << ": " << v);
        CHECK(v.find("spoof") == std::string::npos);
    }
    CHECK(env.up.requests().size() == 1);
}

// --- slowloris

TEST_CASE("security: a head dribbled byte by byte is closed at header_timeout", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url(), {}, "mch_admin",
                                        "limits:\n  header_timeout: 500ms\n  idle_timeout: 10s\n"));
    const std::string head =
        "GET /public/slow HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(400, 'a') + "\r\n\r\n";
    // Once on a new connection, once for the second request of a kept-alive connection (the
    // header_timeout runs from its first byte, not from the last).
    for (const bool kept_alive : {false, true}) {
        INFO("kept alive: " << kept_alive);
        http_client c(proxy.port(), short_timeout());
        if (kept_alive) {
            REQUIRE(c.get("/public/first").status == 200);
        }
        const auto start = std::chrono::steady_clock::now();
        std::optional<std::chrono::steady_clock::duration> closed_after;
        // 20 ms a byte: the whole head would take ~8.5 s, far beyond the 500 ms limit.
        for (std::size_t i = 0; i + 4 < head.size(); ++i) {
            try {
                c.send_raw(head.substr(i, 1));
            } catch (const std::exception&) {
                closed_after = std::chrono::steady_clock::now() - start;
                break;
            }
            std::this_thread::sleep_for(20ms);  // the dribble itself, not a synchronization
        }
        REQUIRE(closed_after);
        CHECK(*closed_after >= 400ms);
        CHECK(*closed_after < 3s);
        CHECK(c.closed_by_peer());
    }
    CHECK(up.heads_received() == 1);  // only /public/first
    CHECK(up.requests().at(0).target == "/public/first");
}

// A request body is bounded two ways: each read by limits.idle_timeout, and all reads together by
// header_timeout + bytes / limits.min_body_rate (time blocked on the client only). A body that
// keeps dribbling below the rate is cut; with min_body_rate: 0 it is relayed as long as it
// dribbles, and one that stops is cut after idle_timeout.
TEST_CASE("security: a dribbled request body below min_body_rate is cut", "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    // idle_timeout (2 s) is far above the 100 ms between bytes: only the rate check can cut.
    proxy_process proxy(dir, sec_config(up.url(), {}, "mch_admin",
                                        "limits:\n  header_timeout: 300ms\n  idle_timeout: 2s\n"
                                        "  min_body_rate: 1024\n"));
    http_client c(proxy.port(), short_timeout());
    c.send_raw("POST /public/drip HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n");
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::duration> closed_after;
    int sent = 0;
    // 10 bytes a second; the whole body would take 10 s. The allowance is 300 ms + ~0 s.
    for (; sent < 100; ++sent) {
        std::this_thread::sleep_for(100ms);  // the dribble itself, not a synchronization
        try {
            c.send_raw("b");
        } catch (const std::exception&) {
            closed_after = std::chrono::steady_clock::now() - start;
            break;
        }
    }
    REQUIRE(closed_after);
    CHECK(*closed_after >= 300ms);
    CHECK(*closed_after < 2s);  // before idle_timeout could have cut anything
    CHECK(c.closed_by_peer());
    // The upstream got the head and at most the bytes dribbled before the cut, never the body.
    REQUIRE(up.wait_for_requests(1));
    CHECK(up.requests().at(0).target == "/public/drip");
    CHECK(up.requests().at(0).body_size < 100);
    CHECK(up.requests().at(0).body_size <= static_cast<std::uint64_t>(sent));
}

TEST_CASE("security: with min_body_rate 0 a dribbled body is bounded per read by idle_timeout",
          "[it][security]") {
    recording_upstream up;
    temp_dir dir;
    proxy_process proxy(dir, sec_config(up.url(), {}, "mch_admin",
                                        "limits:\n  header_timeout: 300ms\n  idle_timeout: 700ms\n"
                                        "  min_body_rate: 0\n"));
    SECTION("a body that keeps dribbling past header_timeout and idle_timeout is relayed") {
        http_client c(proxy.port(), short_timeout());
        const std::string body(20, 'b');
        c.send_raw("POST /public/drip HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n");
        const auto start = std::chrono::steady_clock::now();
        for (char ch : body) {
            std::this_thread::sleep_for(100ms);  // the dribble: 2 s in all
            c.send_raw(std::string(1, ch));
        }
        CHECK(std::chrono::steady_clock::now() - start > 1500ms);
        CHECK(c.read_response().status == 200);
        REQUIRE(up.wait_for_requests(1));
        CHECK(up.requests().at(0).body_size == 20);
        CHECK(up.requests().at(0).body_sha256 == sha256_hex(body));
    }
    SECTION("a body that stops is cut after idle_timeout") {
        http_client c(proxy.port(), short_timeout());
        c.send_raw("POST /public/stall HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\nhello");
        const auto start = std::chrono::steady_clock::now();
        CHECK(c.closed_by_peer());
        const auto took = std::chrono::steady_clock::now() - start;
        CHECK(took >= 500ms);
        CHECK(took < 3s);
        // The upstream saw the head and the 5 bytes, then its connection closed: an incomplete
        // request it must not act on.
        REQUIRE(up.wait_for_requests(1));
        CHECK(up.requests().at(0).target == "/public/stall");
        CHECK(up.requests().at(0).body_size == 5);
    }
}

// --- cache flooding

TEST_CASE("security: 50000 invalid tokens do not evict a valid cache entry", "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir,
                        env.config("cache:\n  max_entries: 1000\n  ttl: 1h\n  negative_ttl: 60s\n"
                                   "log:\n  access_log: false\nthreads: 2\n"));
    const std::string token = env.knobs.mint(env.c_id)["token"];
    http_client c(proxy.port(), short_timeout());
    REQUIRE(c.get("/api/x", {{"Authorization", "Bearer " + token}}).status == 200);
    REQUIRE(env.knobs.verify_calls() == 1);
    const double hits_before = metric(proxy.admin_port(), hit_series);

    constexpr int threads_n = 8;
    constexpr int per_thread = 50000 / threads_n;
    std::atomic<int> refused{0};
    std::atomic<int> other{0};
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < threads_n; ++t) {
        threads.emplace_back([&, t] {
            try {
                http_client tc(proxy.port());
                for (int i = 0; i < per_thread; ++i) {
                    char unknown[40];
                    std::snprintf(unknown, sizeof unknown, "mt_%02d%030d", t, i);
                    const auto r =
                        tc.get("/api/x", {{"Authorization", std::string("Bearer ") + unknown}});
                    (r.status == 401 ? refused : other)++;
                }
            } catch (...) {
                ++other;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    const auto took = std::chrono::steady_clock::now() - start;
    WARN("50000 invalid tokens took "
         << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(refused == threads_n * per_thread);
    CHECK(other == 0);
    const long calls = env.knobs.verify_calls();
    CHECK(calls >= 1 + threads_n * per_thread);  // each unknown token: a Clerk call

    // The valid token is still cached: no Clerk call, one more hit. (A new connection: the first
    // one may have outlived idle_timeout during a slow flood, e.g. under ASan.)
    http_client after(proxy.port(), short_timeout());
    CHECK(after.get("/api/x", {{"Authorization", "Bearer " + token}}).status == 200);
    CHECK(env.knobs.verify_calls() == calls);
    CHECK(metric(proxy.admin_port(), hit_series) == hits_before + 1);
    CHECK(env.up.requests().size() == 2);
}

// --- tokens outside the Authorization header

TEST_CASE("security: a token in the query string or a cookie is ignored", "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir, env.config());
    const std::string token = env.knobs.mint(env.c_id)["token"];
    http_client c(proxy.port(), short_timeout());
    for (const auto& target : std::vector<std::string>{
             "/api/x?token=" + token, "/api/x?access_token=" + token,
             "/api/x?__clerk_token=" + token, "/api/x?a=1&access_token=" + token + "&b=2",
             "/api/x?authorization=Bearer%20" + token}) {
        INFO(target);
        const auto r = c.get(target);
        CHECK(r.status == 401);
        CHECK(body_json(r)["error"] == "missing_token");
        CHECK(r.body.find(token) == std::string::npos);
    }
    for (const auto& cookie :
         std::vector<std::string>{"__session=" + token, "__clerk_token=" + token}) {
        const auto r = c.get("/api/x", {{"Cookie", cookie}});
        CHECK(r.status == 401);
        CHECK(body_json(r)["error"] == "missing_token");
    }
    const auto form =
        c.request("POST", "/api/x", {{"Content-Type", "application/x-www-form-urlencoded"}},
                  "access_token=" + token);
    CHECK(form.status == 401);
    CHECK(body_json(form)["error"] == "missing_token");
    CHECK(env.knobs.verify_calls() == 0);
    CHECK(env.up.heads_received() == 0);
}

// --- secrets never leave the process

TEST_CASE("security: tokens and keys never appear in logs metrics or responses", "[it][security]") {
    clerk_env env;
    proxy_process proxy(env.dir, env.config("log:\n  level: trace\n  format: json\n"));
    auto valid_tok = env.knobs.mint(env.c_id, {{"claims", {{"tenant", "t1"}}}});
    const std::string valid = valid_tok["token"];
    auto revoked_tok = env.knobs.mint(env.c_id);
    env.knobs.revoke(revoked_tok["id"]);
    const std::string revoked = revoked_tok["token"];
    const std::string jwt = env.knobs.mint(env.c_id, {{"token_format", "jwt"}})["token"];
    std::string forged = jwt;
    forged.back() = forged.back() == 'A' ? 'B' : 'A';
    const std::string unknown = "mt_unknownunknownunknown0123456789";
    const std::string malformed = "mt_malformed!secretpart";
    const std::string oversized = "mt_" + std::string(5000, 'q');
    const std::string failing = env.knobs.mint(env.c_id)["token"];
    const std::string in_query = env.knobs.mint(env.c_id)["token"];
    const std::vector<std::string> secrets{valid,     revoked,   jwt,     forged,   unknown,
                                           malformed, oversized, failing, in_query, instance_key};

    std::vector<http_response> responses;
    http_client c(proxy.port(), short_timeout());
    const auto bearer = [](const std::string& t) {
        return http_client::header_list{{"Authorization", "Bearer " + t}};
    };
    responses.push_back(c.get("/api/x", bearer(valid)));
    responses.push_back(c.get("/admin/x", bearer(valid)));  // cached, policy allows
    responses.push_back(c.get("/api/x", bearer(revoked)));
    responses.push_back(c.get("/api/x", bearer(jwt)));
    responses.push_back(c.get("/api/x", bearer(forged)));
    responses.push_back(c.get("/api/x", bearer(unknown)));
    responses.push_back(c.get("/api/x", bearer(unknown)));  // negative hit
    responses.push_back(c.get("/api/x", bearer(malformed)));
    responses.push_back(c.get("/api/x", bearer(oversized)));
    responses.push_back(c.get("/api/x?access_token=" + in_query));
    responses.push_back(c.get("/public/x?token=" + in_query, bearer(valid)));
    for (const std::string mode : {"status", "hang", "close", "garbage"}) {
        env.knobs.fail(1000, mode, 500);
        responses.push_back(c.get("/api/x", bearer(failing)));
        env.knobs.fail(0, "status");
    }
    env.knobs.fail(1000, "status", 401);  // Clerk says our key is wrong
    responses.push_back(c.get("/api/x", bearer(failing)));
    env.knobs.fail(0, "status");

    const std::vector<int> statuses{200, 200, 401, 200, 401, 401, 401, 401,
                                    401, 401, 200, 503, 503, 503, 503, 503};
    REQUIRE(responses.size() == statuses.size());
    for (std::size_t i = 0; i < responses.size(); ++i) {
        INFO("response " << i << ": " << responses[i].body);
        CHECK(responses[i].status == statuses[i]);
    }

    // The upstream receives no token either (forward_authorization is false) except the query
    // string of the auth: none request, which is the client's own business.
    for (const auto& seen : env.up.requests()) {
        CHECK(seen.count("Authorization") == 0);
    }

    const std::string metrics = metrics_text(proxy.admin_port());
    // Every request's access-log line is out (it follows the response).
    for (const auto& r : responses) {
        CHECK(proxy.proc().wait_for_line(std::regex("\"request_id\":\"" + r.header("X-Request-Id")),
                                         5s));
    }
    const std::string output = proxy.proc().output();
    for (const auto& s : secrets) {
        // The whole secret, and its last 20 characters (the random part) to catch a copy that
        // was truncated or had its prefix cut.
        for (const auto& probe : {s, s.substr(s.size() > 20 ? s.size() - 20 : 0)}) {
            INFO("secret " << probe.substr(0, 40));
            CHECK(output.find(probe) == std::string::npos);
            CHECK(metrics.find(probe) == std::string::npos);
            for (const auto& r : responses) {
                CHECK(r.body.find(probe) == std::string::npos);
                for (const auto& [k, v] : r.headers) {
                    CHECK(v.find(probe) == std::string::npos);
                }
            }
        }
    }
}
