// The shared verification cache (issue #19, cache.shared) with a real Redis (Debian
// redis-server, started privately: its own dir, a unix socket or a free loopback port, no
// persistence, stopped by PID), two proxy processes and the Clerk emulator.
#include "clerk_knobs.hpp"
#include "fakes/principal_edit.hpp"
#include "harness.hpp"

#include "core/shared_entry.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

using namespace clerk::it;
using json = nlohmann::json;

namespace {

/// redis-server on a unix socket in `dir` (and a TCP port when `port` != 0).
class redis_server {
public:
    redis_server(const temp_dir& dir, std::uint16_t port = 0, std::string password = {},
                 std::vector<std::string> extra = {})
        : dir_(dir.path().string()),
          port_(port),
          password_(std::move(password)),
          extra_(std::move(extra)) {
        start();
    }
    ~redis_server() { stop(); }

    void start() {
        std::vector<std::string> args{"--port",       std::to_string(port_),
                                      "--bind",       "127.0.0.1",
                                      "--unixsocket", socket(),
                                      "--dir",        dir_,
                                      "--save",       "",
                                      "--appendonly", "no",
                                      "--daemonize",  "no",
                                      "--loglevel",   "warning"};
        if (!password_.empty()) {
            args.insert(args.end(), {"--requirepass", password_});
        }
        args.insert(args.end(), extra_.begin(), extra_.end());
        proc_ = std::make_unique<process>("/usr/bin/redis-server", args);
        if (!eventually([&] { return cli({"PING"}) == "PONG"; }, 10s)) {
            FAIL("redis-server did not start (scripts/install-deps.sh test installs it):\n"
                 << proc_->output());
        }
    }
    void stop() {
        if (proc_ && proc_->running()) {
            proc_->signal(SIGKILL);
            proc_->wait_exit(5s);
        }
        proc_.reset();
    }
    std::string socket() const { return dir_ + "/redis.sock"; }
    std::string url() const { return "unix://" + socket(); }

    /// redis-cli on the socket; its output without the trailing newline.
    std::string cli(const std::vector<std::string>& args) const {
        std::vector<std::string> a{"-s", socket(), "--no-auth-warning"};
        if (!password_.empty()) {
            a.insert(a.end(), {"-a", password_});
        }
        a.insert(a.end(), args.begin(), args.end());
        process p("/usr/bin/redis-cli", a);
        p.wait_exit(10s);
        std::string out = p.output();
        while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
            out.pop_back();
        }
        return out;
    }

private:
    std::string dir_;
    std::uint16_t port_;
    std::string password_;
    std::vector<std::string> extra_;
    std::unique_ptr<process> proc_;
};

/// Two or four proxies sharing one Redis. The Redis round-trip bound is generous (2 s): these
/// tests are about what is shared, and a loaded machine must not turn a slow lookup into an
/// extra Clerk call that the counts would see.
struct fleet {
    /// `connected`: wait until every proxy's Redis connection is up (it is made in the
    /// background; until then lookups are errors and go to Clerk, which the counts would see).
    explicit fleet(const std::string& redis_url, std::size_t n = 2,
                   const std::string& shared_extra = {}, bool connected = true)
        : emu({"caller"}), knobs(emu.port()) {
        for (std::size_t i = 0; i < n; ++i) {
            proxies.push_back(std::make_unique<proxy_process>(
                dirs[i],
                "listen: \"127.0.0.1:0\"\n"
                "upstream:\n  url: \"" +
                    up.url() +
                    "\"\n"
                    "clerk:\n  api_url: \"" +
                    emu.url() + "\"\n  secret_key: \"" + instance_key +
                    "\"\n  retries: 0\n"
                    "cache:\n  ttl: 60s\n  negative_ttl: 60s\n  shared:\n"
                    "    redis_url: \"" +
                    redis_url + "\"\n    timeout: 2s\n" + shared_extra +
                    "admin:\n  listen: \"127.0.0.1:0\"\n"
                    "log:\n  level: info\n  format: json\n  access_log: false\n"
                    "threads: 2\n"));
        }
        for (auto& p : proxies) {
            if (connected &&
                !p->proc().wait_for_line(std::regex("shared cache: connected to Redis"), 20s)) {
                FAIL("a proxy did not connect to Redis:\n" << p->proc().output());
            }
        }
    }
    std::string mint() {
        auto r = knobs.request("POST", "/__emulator/tokens", {{"Content-Type", "application/json"}},
                               json{{"machine_id", emu.machines().at(0).id}}.dump());
        REQUIRE(r.status / 100 == 2);
        return json::parse(r.body)["token"].get<std::string>();
    }
    long verify_calls() {
        auto r = knobs.get("/__emulator/stats");
        REQUIRE(r.status == 200);
        return json::parse(r.body)["verify_calls"].get<long>();
    }
    double metric(std::size_t i, const std::string& series) {
        return scrape_metric(proxies[i]->admin_port(), series).value_or(0);
    }
    /// Waits until proxy `i` has written `n` results to Redis.
    bool written(std::size_t i, double n) {
        return eventually(
            [&] { return metric(i, "clerk_proxy_shared_cache_writes_total{result=\"ok\"}") >= n; },
            10s);
    }
    int get(std::size_t i, const std::string& token) {
        http_client c(proxies[i]->port());
        return c.get("/api/x", bearer(token)).status;
    }

    std::array<temp_dir, 4> dirs;
    emulator_process emu;
    http_client knobs;
    recording_upstream up;
    std::vector<std::unique_ptr<proxy_process>> proxies;
};

}  // namespace

TEST_CASE("shared cache: one Clerk call per token for the whole fleet", "[it][shared]") {
    temp_dir dir;
    redis_server redis(dir);
    fleet f(redis.url());
    const std::string token = f.mint();

    REQUIRE(f.get(0, token) == 200);
    REQUIRE(f.written(0, 1));
    for (int i = 1; i < 100; ++i) {
        REQUIRE(f.get(static_cast<std::size_t>(i % 2), token) == 200);
    }
    CHECK(f.verify_calls() == 1);
    CHECK(f.metric(1, "clerk_proxy_shared_cache_lookups_total{result=\"hit\"}") == 1);

    SECTION("negative results are shared too") {
        const std::string unknown = "mt_" + std::string(40, 'z');
        const long before = f.verify_calls();
        CHECK(f.get(0, unknown) == 401);
        REQUIRE(f.written(0, 2));
        CHECK(f.get(1, unknown) == 401);
        CHECK(f.verify_calls() == before + 1);
    }
    SECTION("keys hold neither a token nor a plain SHA-256 of one") {
        const auto keys = redis.cli({"--scan"});
        CHECK(keys.rfind("clerk-m2m-proxy:", 0) == 0);
        CHECK(keys.find(token) == std::string::npos);
        CHECK(keys.find(sha256_hex(token)) == std::string::npos);
        const auto value = redis.cli({"GET", keys});
        CHECK(value.find(token) == std::string::npos);
    }
}

TEST_CASE("shared cache: a forged entry is never trusted", "[it][shared]") {
    temp_dir dir;
    redis_server redis(dir);
    fleet f(redis.url(), 1);
    // Someone who can write to Redis but does not hold our Clerk key: an identity for a token
    // Clerk does not know, under the right key name (key names are not secret), MACed with
    // another key.
    const std::string bogus = "mt_" + std::string(40, 'q');
    const clerk::core::shared_entry_codec ours(instance_key, "clerk-m2m-proxy:");
    const clerk::core::shared_entry_codec attacker("sk_test_guess", "clerk-m2m-proxy:");
    clerk::core::identity fake;
    clerk::testing::edit(fake).subject = "mch_admin";
    fake.token_id = "mt_fake";
    clerk::testing::edit(fake).scopes = {"everything"};
    const long long far = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count() +
                          3'600'000;
    const auto key = ours.key_for(bogus);
    REQUIRE(redis.cli({"SET", key, attacker.encode_positive(key, fake, far)}) == "OK");

    CHECK(f.get(0, bogus) == 401);
    CHECK(f.verify_calls() == 1);  // Clerk was asked: the entry was not believed
    CHECK(f.metric(0, "clerk_proxy_shared_cache_rejected_entries_total") == 1);
    CHECK(f.up.requests().empty());
}

TEST_CASE("shared cache: Redis down costs no request, and it comes back", "[it][shared]") {
    temp_dir dir;
    redis_server redis(dir);
    fleet f(redis.url());
    REQUIRE(f.get(0, f.mint()) == 200);
    REQUIRE(f.written(0, 1));

    redis.stop();
    for (int i = 0; i < 20; ++i) {
        CHECK(f.get(static_cast<std::size_t>(i % 2), f.mint()) == 200);  // Clerk answers alone
    }
    CHECK(f.metric(0, "clerk_proxy_shared_cache_lookups_total{result=\"error\"}") >= 1);

    redis.start();
    // Reconnection happens in the background with backoff (at most 5 s between attempts):
    // fresh tokens until one verified by proxy 0 is found in Redis by proxy 1.
    bool shared_again = false;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!shared_again && std::chrono::steady_clock::now() < deadline) {
        const std::string t = f.mint();
        const double writes = f.metric(0, "clerk_proxy_shared_cache_writes_total{result=\"ok\"}");
        const double hits = f.metric(1, "clerk_proxy_shared_cache_lookups_total{result=\"hit\"}");
        REQUIRE(f.get(0, t) == 200);
        if (eventually(
                [&] {
                    return f.metric(0, "clerk_proxy_shared_cache_writes_total{result=\"ok\"}") >
                           writes;
                },
                1s)) {
            REQUIRE(f.get(1, t) == 200);
            shared_again =
                f.metric(1, "clerk_proxy_shared_cache_lookups_total{result=\"hit\"}") > hits;
        }
    }
    CHECK(shared_again);
    CHECK(f.proxies[0]->proc().running());
    CHECK(f.proxies[1]->proc().running());
}

TEST_CASE("shared cache: AUTH over TCP, the password never in the output", "[it][shared]") {
    temp_dir dir;
    const std::uint16_t port = free_port();
    redis_server redis(dir, port, "s3cret-redis-pw");
    fleet f("redis://:s3cret-redis-pw@127.0.0.1:" + std::to_string(port) + "/1");
    const std::string token = f.mint();
    REQUIRE(f.get(0, token) == 200);
    REQUIRE(f.written(0, 1));
    CHECK(f.get(1, token) == 200);
    CHECK(f.verify_calls() == 1);
    for (const auto& p : f.proxies) {
        CHECK(p->proc().output().find("s3cret-redis-pw") == std::string::npos);
        CHECK(p->proc().output().find(token) == std::string::npos);
    }
}

TEST_CASE("shared cache: rediss:// with certificate and host-name verification", "[it][shared]") {
    temp_dir dir;
    const auto pki = make_test_pki(dir, "redis", {"localhost"}, {"127.0.0.1"});
    const std::uint16_t tls_port = free_port();
    redis_server redis(dir, 0, {},
                       {"--tls-port", std::to_string(tls_port), "--tls-cert-file", pki.cert,
                        "--tls-key-file", pki.key, "--tls-auth-clients", "no"});
    const std::string url = "rediss://localhost:" + std::to_string(tls_port);

    SECTION("trusted through cache.shared.ca_file: shared") {
        fleet f(url, 2, "    ca_file: \"" + pki.ca_cert + "\"\n");
        const std::string token = f.mint();
        REQUIRE(f.get(0, token) == 200);
        REQUIRE(f.written(0, 1));
        CHECK(f.get(1, token) == 200);
        CHECK(f.verify_calls() == 1);
    }
    SECTION("an untrusted certificate: no shared cache, and no failed request") {
        fleet f(url, 2, {}, /*connected=*/false);
        const std::string token = f.mint();
        CHECK(f.get(0, token) == 200);
        CHECK(f.get(1, token) == 200);
        CHECK(f.verify_calls() == 2);
        CHECK(f.metric(0, "clerk_proxy_shared_cache_lookups_total{result=\"error\"}") == 1);
        CHECK(f.metric(0, "clerk_proxy_shared_cache_writes_total{result=\"ok\"}") == 0);
    }
}
