// Security: identity header spoofing, duplicated headers, tokens outside the Authorization header.
#include "harness.hpp"
#include "security_fixtures.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

using namespace clerk::it;
using namespace clerk::it::security_fixtures;

namespace {

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

// --- duplicated headers

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
