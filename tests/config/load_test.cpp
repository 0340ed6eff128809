#include "config/load.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using clerk::config::config_error;
using clerk::config::env_lookup;
using clerk::config::load_config_file;
using clerk::config::load_config_string;
using clerk::config::load_result;
namespace core = clerk::core;
namespace cfgns = clerk::config;

namespace {

env_lookup fake_env(std::map<std::string, std::string, std::less<>> vars) {
    return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
        const auto it = vars.find(name);
        if (it == vars.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

constexpr std::string_view fixtures_dir = CLERK_CONFIG_FIXTURES;

env_lookup make_test_env() {
    return fake_env({
        {"MSK", "ak_machine"},
        {"SK", "sk_test_instance"},
        {"EMPTY", ""},
        {"FIXTURES", std::string(fixtures_dir)},
        {"UPSTREAM", "http://10.0.0.1:8000"},
    });
}

load_result load(std::string_view yaml, const env_lookup& env = make_test_env()) {
    return load_config_string(yaml, "test.yaml", env);
}

/// 1-based number of the first line of `yaml` that contains `marker`.
int line_containing(std::string_view yaml, std::string_view marker) {
    const auto pos = yaml.find(marker);
    REQUIRE(pos != std::string_view::npos);
    return 1 + static_cast<int>(std::count(yaml.begin(), yaml.begin() + pos, '\n'));
}

std::string dump(const std::vector<config_error>& errors) {
    std::string out;
    for (const auto& e : errors) {
        out += e.to_string() + "\n";
    }
    return out;
}

constexpr std::string_view base =
    "upstream:\n"
    "  url: http://127.0.0.1:3000\n"
    "clerk:\n"
    "  machine_secret_key: ak_test\n";

std::string with_base(std::string_view extra) {
    return std::string(base) + std::string(extra);
}

}  // namespace

TEST_CASE("a minimal config gets every documented default", "[config][load]") {
    const auto r = load(base);
    INFO(dump(r.errors));
    REQUIRE(r.ok());
    const cfgns::config& c = *r.cfg;
    CHECK(c.source_path == "test.yaml");
    CHECK(c.mode == cfgns::proxy_mode::proxy);
    CHECK(c.listen.host == "0.0.0.0");
    CHECK(c.listen.port == 8080);
    CHECK_FALSE(c.tls.enabled());
    // upstream
    CHECK(c.upstream.url == "http://127.0.0.1:3000");
    CHECK(c.upstream.scheme == cfgns::upstream_scheme::http);
    CHECK(c.upstream.host == "127.0.0.1");
    CHECK(c.upstream.port == 3000);
    CHECK(c.upstream.host_header == "127.0.0.1:3000");
    CHECK(c.upstream.base_path.empty());
    CHECK(c.upstream.connect_timeout == 2s);
    CHECK(c.upstream.timeout == 60s);
    CHECK(c.upstream.max_idle_connections == 128);
    CHECK(c.upstream.preserve_host);
    CHECK(c.upstream.tls_verify);
    CHECK(c.upstream.ca_file.empty());
    // clerk
    CHECK(c.clerk.api_url == "https://api.clerk.com");
    CHECK(c.clerk.api_url_is_https);
    CHECK(c.clerk.api_host == "api.clerk.com");
    CHECK(c.clerk.api_port == 443);
    CHECK(c.clerk.api_base_path.empty());
    CHECK(c.clerk.api_version == "2026-05-12");
    CHECK(c.clerk.ca_file.empty());
    CHECK(c.clerk.machine_secret_key == "ak_test");
    CHECK(c.clerk.secret_key.empty());
    CHECK(c.clerk.verify_key() == "ak_test");
    CHECK(c.clerk.timeout == 2s);
    CHECK(c.clerk.retries == 2);
    CHECK(c.clerk.jwt_key.empty());
    // auth
    CHECK_FALSE(c.auth.accepts.any);
    CHECK(c.auth.accepts.types == std::vector{core::token_type::m2m_token});
    CHECK_FALSE(c.auth.forward_authorization);
    CHECK(c.auth.clock_skew == 5s);
    // cache
    CHECK(c.cache.max_entries == 100000);
    CHECK(c.cache.ttl == 60s);
    CHECK(c.cache.negative_ttl == 10s);
    CHECK(c.cache.stale_if_error == 0s);
    // headers
    CHECK(c.headers.subject == "X-Clerk-Subject");
    CHECK(c.headers.machine_id == "X-Clerk-Machine-Id");
    CHECK(c.headers.token_id == "X-Clerk-Token-Id");
    CHECK(c.headers.token_type == "X-Clerk-Token-Type");
    CHECK(c.headers.scopes == "X-Clerk-Scopes");
    CHECK(c.headers.claims == "X-Clerk-Claims");
    CHECK(c.headers.strip_prefixes == std::vector<std::string>{"X-Clerk-"});
    CHECK(c.headers.claims_to_headers.empty());
    CHECK(c.routes.empty());
    // admin, limits, shutdown, log, threads
    REQUIRE(c.admin.listen.has_value());
    CHECK(c.admin.listen->host == "127.0.0.1");
    CHECK(c.admin.listen->port == 9901);
    CHECK(c.limits.max_header_bytes == 16384);
    CHECK(c.limits.max_body_bytes == 0);
    CHECK(c.limits.header_timeout == 10s);
    CHECK(c.limits.idle_timeout == 60s);
    CHECK(c.limits.max_connections == 10000);
    CHECK(c.limits.min_body_rate == 1024);
    CHECK(c.limits.tunnel_idle_timeout == 1h);
    CHECK(c.limits.tunnel_max_lifetime == 0s);
    CHECK(c.shutdown.drain_timeout == 15s);
    CHECK(c.log.level == cfgns::log_level::info);
    CHECK(c.log.format == cfgns::log_format::json);
    CHECK(c.log.access_log);
    CHECK(c.threads == 0);
    CHECK(c.warnings.empty());
}

TEST_CASE("every key of docs/reference.md §3 is read", "[config][load]") {
    const std::string yaml = R"(version: 1
mode: proxy
listen: "[::]:0"
tls:
  cert_file: ${FIXTURES}/jwt_public.pem
  key_file: ${FIXTURES}/jwt_public.pem
upstream:
  url: "https://Backend.Example:8443/v1/"
  connect_timeout: 250ms
  timeout: 5m
  max_idle_connections: 0
  preserve_host: false
  tls_verify: false
  ca_file: ${FIXTURES}/ca_cert.pem
clerk:
  api_url: "http://127.0.0.1:8090/"
  api_version: "2025-01-01"
  ca_file: ${FIXTURES}/ca_cert.pem
  machine_secret_key: "${MSK}"
  secret_key: "${SK}"
  timeout: 1500ms
  retries: 0
  jwt_key: ${FIXTURES}/jwt_public.pem
auth:
  accepts_token: [m2m_token, session_token, m2m_token]
  forward_authorization: true
  clock_skew: 0s
  audience: [mch_self]
  authorized_parties: ["https://app.example.com"]
cache:
  max_entries: 1
  ttl: 0s
  negative_ttl: 1h
  stale_if_error: 30s
headers:
  subject: X-Sub
  machine_id: X-Mid
  token_id: X-Tid
  token_type: X-Type
  scopes: X-Scopes
  claims: X-Claims
  strip_prefixes: [X-Internal-, X-Auth-]
  claims_to_headers: {tenant: X-Tenant-Id, org: X-Org}
routes:
  - path: /healthz
    methods: [get, Head]
    auth: none
  - path: /admin/*
    require_scopes: [mch_admin, mch_ops]
    allow_subjects: [mch_ops]
    auth: required
  - path: /*
admin:
  listen: ""
limits:
  max_header_bytes: 1024
  max_body_bytes: 18446744073709551615
  header_timeout: 1s
  idle_timeout: 2h
  max_connections: 1
  min_body_rate: 0
  tunnel_idle_timeout: 90s
  tunnel_max_lifetime: 12h
shutdown:
  drain_timeout: 0s
log:
  level: trace
  format: text
  access_log: false
threads: 4
)";
    const auto r = load(yaml);
    INFO(dump(r.errors));
    REQUIRE(r.ok());
    const cfgns::config& c = *r.cfg;
    CHECK(c.listen.host == "::");
    CHECK(c.listen.port == 0);
    CHECK(c.listen.text == "[::]:0");
    CHECK(c.tls.enabled());
    CHECK(c.tls.key_file == std::string(fixtures_dir) + "/jwt_public.pem");
    CHECK(c.upstream.scheme == cfgns::upstream_scheme::https);
    CHECK(c.upstream.host == "backend.example");
    CHECK(c.upstream.port == 8443);
    CHECK(c.upstream.host_header == "backend.example:8443");
    CHECK(c.upstream.base_path == "/v1");
    CHECK(c.upstream.connect_timeout == 250ms);
    CHECK(c.upstream.timeout == 5min);
    CHECK(c.upstream.max_idle_connections == 0);
    CHECK_FALSE(c.upstream.preserve_host);
    CHECK_FALSE(c.upstream.tls_verify);
    CHECK(c.upstream.ca_file == std::string(fixtures_dir) + "/ca_cert.pem");
    CHECK(c.clerk.api_url == "http://127.0.0.1:8090");
    CHECK_FALSE(c.clerk.api_url_is_https);
    CHECK(c.clerk.api_host == "127.0.0.1");
    CHECK(c.clerk.api_port == 8090);
    CHECK(c.clerk.api_version == "2025-01-01");
    CHECK(c.clerk.machine_secret_key == "ak_machine");
    CHECK(c.clerk.secret_key == "sk_test_instance");
    CHECK(c.clerk.timeout == 1500ms);
    CHECK(c.clerk.retries == 0);
    CHECK(c.clerk.jwt_key.find("-----BEGIN PUBLIC KEY-----") == 0);  // the file's content
    CHECK(c.auth.accepts.types ==
          std::vector{core::token_type::m2m_token, core::token_type::session_token});
    CHECK(c.auth.forward_authorization);
    CHECK(c.auth.clock_skew == 0s);
    CHECK(c.auth.audience == std::vector<std::string>{"mch_self"});
    CHECK(c.auth.authorized_parties == std::vector<std::string>{"https://app.example.com"});
    CHECK(c.cache.max_entries == 1);
    CHECK(c.cache.ttl == 0s);
    CHECK(c.cache.negative_ttl == 1h);
    CHECK(c.cache.stale_if_error == 30s);
    CHECK(c.headers.subject == "X-Sub");
    CHECK(c.headers.machine_id == "X-Mid");
    CHECK(c.headers.token_id == "X-Tid");
    CHECK(c.headers.token_type == "X-Type");
    CHECK(c.headers.scopes == "X-Scopes");
    CHECK(c.headers.claims == "X-Claims");
    CHECK(c.headers.strip_prefixes == std::vector<std::string>{"X-Internal-", "X-Auth-"});
    using claim_pair = std::pair<std::string, std::string>;
    CHECK(c.headers.claims_to_headers ==
          std::vector<claim_pair>{{"tenant", "X-Tenant-Id"}, {"org", "X-Org"}});
    REQUIRE(c.routes.size() == 3);
    CHECK(c.routes[0].path == "/healthz");
    CHECK_FALSE(c.routes[0].prefix);
    CHECK(c.routes[0].methods == std::vector<std::string>{"GET", "HEAD"});
    CHECK(c.routes[0].auth == core::auth_mode::none);
    CHECK(c.routes[0].line == line_containing(yaml, "- path: /healthz"));
    CHECK(c.routes[1].prefix);
    CHECK(c.routes[1].match == "/admin");
    CHECK(c.routes[1].methods.empty());
    CHECK(c.routes[1].auth == core::auth_mode::required);
    CHECK(c.routes[1].require_scopes == std::vector<std::string>{"mch_admin", "mch_ops"});
    CHECK(c.routes[1].allow_subjects == std::vector<std::string>{"mch_ops"});
    CHECK(c.routes[2].prefix);
    CHECK(c.routes[2].match.empty());
    CHECK_FALSE(c.admin.listen.has_value());
    CHECK(c.limits.max_header_bytes == 1024);
    CHECK(c.limits.max_body_bytes == 18446744073709551615ull);
    CHECK(c.limits.header_timeout == 1s);
    CHECK(c.limits.idle_timeout == 2h);
    CHECK(c.limits.max_connections == 1);
    CHECK(c.limits.min_body_rate == 0);
    CHECK(c.limits.tunnel_idle_timeout == 90s);
    CHECK(c.limits.tunnel_max_lifetime == 12h);
    CHECK(c.shutdown.drain_timeout == 0s);
    CHECK(c.log.level == cfgns::log_level::trace);
    CHECK(c.log.format == cfgns::log_format::text);
    CHECK_FALSE(c.log.access_log);
    CHECK(c.threads == 4);
    // https upstream without verification is allowed, but said out loud.
    REQUIRE(c.warnings.size() == 1);
    CHECK(c.warnings[0].find("tls_verify") != std::string::npos);
}

TEST_CASE("accepted variants of single values", "[config][load]") {
    SECTION("forward_auth mode needs no upstream") {
        const auto r = load("mode: forward_auth\nclerk:\n  secret_key: sk_test_x\n");
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(r.cfg->mode == cfgns::proxy_mode::forward_auth);
        CHECK(r.cfg->clerk.verify_key() == "sk_test_x");
    }
    SECTION("accepts_token: any, also as a single scalar") {
        for (std::string_view v : {"[any]", "any", "[m2m_token, any]"}) {
            // api_key, oauth_token and any need the instance secret key (Clerk verifies them
            // with it).
            const auto r = load(with_base(
                "  secret_key: sk_test_x\nauth:\n  accepts_token: " + std::string(v) + "\n"));
            INFO(v << "\n" << dump(r.errors));
            REQUIRE(r.ok());
            CHECK(r.cfg->auth.accepts.any);
            CHECK(r.cfg->auth.accepts.types.size() == 4);
        }
    }
    SECTION("unix upstream") {
        const auto r =
            load("upstream:\n  url: unix:/run/app/app.sock\nclerk:\n  machine_secret_key: k\n");
        REQUIRE(r.ok());
        CHECK(r.cfg->upstream.scheme == cfgns::upstream_scheme::unix_socket);
        CHECK(r.cfg->upstream.unix_path == "/run/app/app.sock");
    }
    SECTION("env expansion, defaults and quoted booleans") {
        const auto r = load(
            "upstream:\n  url: ${UPSTREAM}\n  preserve_host: \"${PRESERVE:-false}\"\n"
            "clerk:\n  secret_key: ${EMPTY:-sk_default}\n  machine_secret_key: ${NOPE:-}\n"
            "listen: ${LISTEN:-127.0.0.1:9000}\n");
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(r.cfg->upstream.host == "10.0.0.1");
        CHECK_FALSE(r.cfg->upstream.preserve_host);
        CHECK(r.cfg->clerk.secret_key == "sk_default");
        CHECK(r.cfg->clerk.machine_secret_key.empty());
        CHECK(r.cfg->listen.port == 9000);
    }
    SECTION("an http api_url off loopback is a warning, not an error") {
        const auto r = load(with_base("  api_url: http://clerk.internal:8080\n"));
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        REQUIRE(r.cfg->warnings.size() == 1);
        CHECK(r.cfg->warnings[0].find("clerk.internal") != std::string::npos);
        for (std::string_view host : {"localhost", "127.0.0.2", "[::1]"}) {
            const auto ok = load(with_base("  api_url: http://" + std::string(host) + ":1\n"));
            INFO(host);
            REQUIRE(ok.ok());
            CHECK(ok.cfg->warnings.empty());
        }
    }
    SECTION("jwt_key as inline PEM text") {
        const auto r =
            load(with_base("  jwt_key: |\n    -----BEGIN PUBLIC KEY-----\n    MIIB\n    -----END "
                           "PUBLIC KEY-----\n"));
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(r.cfg->clerk.jwt_key.starts_with("-----BEGIN PUBLIC KEY-----\nMIIB\n"));
    }
    SECTION("empty sections and comments") {
        const auto r = load(with_base("tls:\nroutes:\nheaders:\n# done\n"));
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK_FALSE(r.cfg->tls.enabled());
    }
    SECTION("a fixture file with TLS, unix upstream and a jwt_key file") {
        const auto r =
            load_config_file(std::string(fixtures_dir) + "/tls_both.yaml", make_test_env());
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(r.cfg->source_path == std::string(fixtures_dir) + "/tls_both.yaml");
        CHECK(r.cfg->listen.host == "::1");
        CHECK(r.cfg->tls.enabled());
    }
}

namespace {

/// One config mistake: the YAML, and the single error it must produce.
struct error_case {
    std::string yaml;
    std::string key;
    std::string marker;   ///< text on the line the error must point at
    std::string problem;  ///< substring of the problem
};

std::vector<error_case> error_cases() {
    const std::string b(base);
    return {
        // unknown keys, at every level
        {with_base("upstreams: {}\n"), "upstreams", "upstreams:", "did you mean \"upstream\""},
        {"upstream:\n  url: http://a:1\n  timout: 1s\nclerk:\n  secret_key: k\n", "upstream.timout",
         "timout", "unknown key (did you mean \"timeout\"?)"},
        {with_base("tls:\n  cert: /x\n"), "tls.cert", "cert:", "unknown key"},
        {with_base("routes:\n  - path: /a\n    scopes: [x]\n"), "routes[0].scopes",
         "scopes:", "unknown key"},
        {with_base("log:\n  levels: info\n"), "log.levels", "levels", "did you mean \"level\""},
        {with_base("admin:\n  port: 1\n"), "admin.port", "port:", "unknown key"},
        {with_base("limits:\n  max_body: 1\n"), "limits.max_body", "max_body", "unknown key"},
        {with_base("cache:\n  size: 1\n"), "cache.size", "size:", "unknown key"},
        {with_base("headers:\n  subjet: X-S\n"), "headers.subjet", "subjet", "did you mean"},
        {with_base("auth:\n  accept_token: [any]\n"), "auth.accept_token", "accept_token",
         "did you mean \"accepts_token\""},
        {with_base("shutdown:\n  drain: 1s\n"), "shutdown.drain", "drain", "unknown key"},
        {with_base("version: 2\n"), "version", "version", "at most 1"},
        {with_base("threads: 1\nthreads: 2\n"), "threads", "threads: 2", "duplicate key"},
        // wrong types
        {with_base("listen: [a, b]\n"), "listen", "listen", "expected a string, got a list"},
        {"upstream:\n  url: http://a:1\n  timeout: [1s]\nclerk:\n  secret_key: k\n",
         "upstream.timeout", "timeout", "expected a duration, got a list"},
        {with_base("cache:\n  max_entries: abc\n"), "cache.max_entries", "abc",
         "expected an integer, got \"abc\""},
        {with_base("cache:\n  max_entries: 1.5\n"), "cache.max_entries", "1.5",
         "expected an integer"},
        {"upstream:\n  url: http://a:1\n  preserve_host: yes\nclerk:\n  secret_key: k\n",
         "upstream.preserve_host", "yes", "expected true or false, got \"yes\""},
        {with_base("log:\n  access_log: True\n"), "log.access_log", "True", "true or false"},
        {with_base("auth:\n  forward_authorization: 1\n"), "auth.forward_authorization",
         "forward_authorization", "true or false"},
        {with_base("routes: /a\n"), "routes", "routes", "expected a list of route rules"},
        {with_base("routes:\n  - /a\n"), "routes[0]", "- /a", "expected a mapping"},
        {with_base("cache: 5\n"), "cache", "cache", "expected a mapping, got a scalar"},
        {with_base("headers:\n  claims_to_headers: [a]\n"), "headers.claims_to_headers", "[a]",
         "expected a mapping"},
        {"- a\n- b\n", "(top level)", "- a", "expected a mapping"},
        // bad values
        {"upstream:\n  url: http://a:1\n  timeout: 5\nclerk:\n  secret_key: k\n",
         "upstream.timeout", "timeout", "bad duration \"5\""},
        {"upstream:\n  url: http://a:1\n  connect_timeout: 0s\nclerk:\n  secret_key: k\n",
         "upstream.connect_timeout", "connect_timeout", "greater than 0"},
        {b + "  timeout: 2 s\n", "clerk.timeout", "2 s", "bad duration"},
        {b + "  retries: -1\n", "clerk.retries", "retries", "must not be negative"},
        {b + "  retries: 11\n", "clerk.retries", "retries", "at most 10"},
        {with_base("limits:\n  max_connections: -1\n"), "limits.max_connections", "-1",
         "must not be negative"},
        {with_base("limits:\n  max_connections: 0\n"), "limits.max_connections",
         "max_connections: 0", "at least 1"},
        {with_base("limits:\n  max_header_bytes: 512\n"), "limits.max_header_bytes", "512",
         "at least 1024"},
        {with_base("limits:\n  tunnel_idle_timeout: 0s\n"), "limits.tunnel_idle_timeout",
         "tunnel_idle_timeout", "greater than 0"},
        {with_base("limits:\n  idle_timeout: 0s\n"), "limits.idle_timeout", "idle_timeout",
         "greater than 0"},
        {with_base("limits:\n  min_body_rate: -1\n"), "limits.min_body_rate", "min_body_rate",
         "must not be negative"},
        {with_base("limits:\n  max_body_bytes: 18446744073709551616\n"), "limits.max_body_bytes",
         "max_body_bytes", "at most"},
        {with_base("cache:\n  max_entries: 0\n"), "cache.max_entries", "max_entries: 0",
         "at least 1"},
        {with_base("cache:\n  ttl: -5s\n"), "cache.ttl", "ttl", "bad duration"},
        {with_base("threads: -1\n"), "threads", "threads", "must not be negative"},
        {with_base("mode: sidecar\n"), "mode", "mode", "expected proxy or forward_auth"},
        {with_base("auth:\n  accepts_token: [m2m_token, api_key]\n"), "clerk.secret_key",
         "clerk:", "required when auth.accepts_token includes api_key"},
        {with_base("mode: forward_auth\n"), "upstream",
         "upstream:", "not allowed in forward_auth mode"},
        {with_base("listen: \"0.0.0.0:70000\"\n"), "listen", "listen", "bad port \"70000\""},
        {with_base("listen: \"0.0.0.0\"\n"), "listen", "listen", "expected \"host:port\""},
        {with_base("listen: \":8080\"\n"), "listen", "listen", "missing host"},
        {with_base("listen: \"::1:8080\"\n"), "listen", "listen", "needs brackets"},
        {with_base("listen: \"[::1]8080\"\n"), "listen", "listen", "[ipv6]:port"},
        {with_base("listen: \"[xyz]:80\"\n"), "listen", "listen", "bad IPv6 address"},
        {with_base("admin:\n  listen: \"127.0.0.1:port\"\n"), "admin.listen", "port", "bad port"},
        {with_base("listen: 127.0.0.1:9901\n"), "admin.listen",
         "upstream:", "must differ from listen"},
        {with_base("log:\n  level: verbose\n"), "log.level", "verbose",
         "expected trace, debug, info, warn or error"},
        {with_base("log:\n  format: xml\n"), "log.format", "xml", "expected json or text"},
        {with_base("auth:\n  accepts_token:\n    - m2m_token\n    - jwt\n"), "auth.accepts_token",
         "- jwt", "unknown token type \"jwt\""},
        {with_base("auth:\n  accepts_token: []\n"), "auth.accepts_token", "accepts_token",
         "at least one"},
        {with_base("auth:\n  clock_skew: 5\n"), "auth.clock_skew", "clock_skew", "bad duration"},
        // upstream URL and Clerk URL
        {"upstream:\n  url: ftp://a:1\nclerk:\n  secret_key: k\n", "upstream.url", "ftp",
         "http:// or https://"},
        {"upstream:\n  url: 127.0.0.1:3000\nclerk:\n  secret_key: k\n", "upstream.url", "url",
         "expected http://host:port"},
        {"upstream:\n  url: http://a:99999\nclerk:\n  secret_key: k\n", "upstream.url", "url",
         "bad port"},
        {"upstream:\n  url: http://user:pw@a:1\nclerk:\n  secret_key: k\n", "upstream.url", "url",
         "credentials"},
        {"upstream:\n  url: http://a:1/x?q=1\nclerk:\n  secret_key: k\n", "upstream.url", "url",
         "query"},
        {"upstream:\n  url: unix:relative.sock\nclerk:\n  secret_key: k\n", "upstream.url", "url",
         "unix:/absolute"},
        {"upstream:\n  url: http://\nclerk:\n  secret_key: k\n", "upstream.url", "url",
         "missing host"},
        {b + "  api_url: ftp://api.clerk.com\n", "clerk.api_url", "ftp", "http:// or https://"},
        {b + "  api_version: \"\"\n", "clerk.api_version", "api_version", "non-empty"},
        {"upstream:\n  url: http://a:1\nclerk:\n  secret_key: \"sk_a b\"\n", "clerk.secret_key",
         "sk_a b", "spaces"},
        // files and keys
        {b + "  jwt_key: not-a-key\n", "clerk.jwt_key", "jwt_key", "PEM public key"},
        {b + "  jwt_key: /nonexistent/key.pem\n", "clerk.jwt_key", "jwt_key", "does not exist"},
        {b + "  jwt_key: ${FIXTURES}/five_mistakes.yaml\n", "clerk.jwt_key", "jwt_key",
         "PEM public key"},
        {b + "  ca_file: /nonexistent/ca.pem\n", "clerk.ca_file", "ca_file", "does not exist"},
        {"upstream:\n  url: https://a:1\n  ca_file: /nonexistent/ca.pem\nclerk:\n  secret_key: "
         "k\n",
         "upstream.ca_file", "ca_file", "does not exist"},
        {b + "  ca_file: ${FIXTURES}\n", "clerk.ca_file", "ca_file", "not a regular file"},
        // A readable file that is not a CA bundle fails --check for every client alike.
        {b + "  ca_file: ${FIXTURES}/jwt_public.pem\n", "clerk.ca_file", "ca_file",
         "no PEM certificate"},
        {b + "  ca_file: ${FIXTURES}/crl_only.pem\n", "clerk.ca_file", "ca_file",
         "no PEM certificate"},  // loads into an X509_STORE, but trusts nothing
        {"upstream:\n  url: https://a:1\n  ca_file: ${FIXTURES}/five_mistakes.yaml\nclerk:\n  "
         "secret_key: k\n",
         "upstream.ca_file", "ca_file", "no PEM certificate"},
        {with_base("tls:\n  cert_file: ${FIXTURES}/jwt_public.pem\n"), "tls.key_file",
         "tls:", "required with tls.cert_file"},
        {with_base("tls:\n  key_file: ${FIXTURES}/jwt_public.pem\n"), "tls.cert_file",
         "tls:", "required with tls.key_file"},
        {with_base("tls:\n  cert_file: ${FIXTURES}/jwt_public.pem\n  key_file: /nope/tls.key\n"),
         "tls.key_file", "key_file", "does not exist"},
        // routes
        {with_base("routes:\n  - path: api\n"), "routes[0].path", "api", "must start with '/'"},
        {with_base("routes:\n  - path: /api/*/x\n"), "routes[0].path", "/api/*/x",
         "only allowed as a final"},
        {with_base("routes:\n  - path: /api*\n"), "routes[0].path", "/api*",
         "only allowed as a final"},
        {with_base("routes:\n  - path: /a/../b\n"), "routes[0].path", "/a/../b", "segments"},
        {with_base("routes:\n  - path: /a//b\n"), "routes[0].path", "/a//b", "//"},
        {with_base("routes:\n  - path: /a?x=1\n"), "routes[0].path", "/a?x", "query"},
        {with_base("routes:\n  - methods: [GET]\n"), "routes[0].path", "methods", "required"},
        {with_base("routes:\n  - path: /a\n  - path: /b\n    methods: [GET, \"GE T\"]\n"),
         "routes[1].methods", "GE T", "\"GE T\" is not a valid HTTP method"},
        {with_base("routes:\n  - path: /a\n    methods: []\n"), "routes[0].methods", "methods",
         "at least one method"},
        {with_base("routes:\n  - path: /a\n    auth: maybe\n"), "routes[0].auth", "maybe",
         "expected none or required"},
        {with_base("routes:\n  - path: /a\n    auth: none\n    require_scopes: [x]\n"),
         "routes[0].require_scopes", "require_scopes", "not allowed with auth: none"},
        {with_base("routes:\n  - path: /a\n    auth: none\n    allow_subjects: [mch_1]\n"),
         "routes[0].allow_subjects", "allow_subjects", "not allowed with auth: none"},
        {with_base("routes:\n  - path: /a\n    require_scopes: [\"\"]\n"),
         "routes[0].require_scopes", "require_scopes", "not a valid scope"},
        // headers
        {with_base("headers:\n  subject: \"X Clerk\"\n"), "headers.subject", "X Clerk",
         "not a valid header name"},
        {with_base("headers:\n  claims: \"X-Claims:\"\n"), "headers.claims",
         "X-Claims:", "not a valid header name"},
        {with_base("headers:\n  strip_prefixes: [\"X-Clerk-\", \"\"]\n"), "headers.strip_prefixes",
         "strip_prefixes", "empty prefix"},
        {with_base("headers:\n  strip_prefixes: [\"A\"]\n"), "headers.strip_prefixes",
         "strip_prefixes", "would strip the authorization header"},
        {with_base("headers:\n  claims_to_headers:\n    tenant: \"bad name\"\n"),
         "headers.claims_to_headers.tenant", "bad name", "not a valid header name"},
        {with_base("headers:\n  scopes: x-clerk-subject\n"), "headers.scopes", "scopes",
         "already used by headers.subject"},
        {with_base("headers:\n  token_id: Authorization\n"), "headers.token_id", "token_id",
         "reserved"},
        // env
        {"upstream:\n  url: http://a:1\nclerk:\n  secret_key: ${CLERK_SECRET_KEY}\n",
         "clerk.secret_key", "CLERK_SECRET_KEY",
         "environment variable CLERK_SECRET_KEY is not set"},
        {"upstream:\n  url: http://a:1\nclerk:\n  secret_key: ${EMPTY}\n", "clerk.secret_key",
         "EMPTY", "environment variable EMPTY is not set"},
        {with_base("listen: \"${HOST\"\n"), "listen", "HOST", "unterminated"},
        // missing required keys
        {"clerk:\n  secret_key: k\n", "upstream.url", "clerk:", "required in proxy mode"},
        {"upstream:\n  timeout: 1s\nclerk:\n  secret_key: k\n", "upstream.url",
         "upstream:", "required in proxy mode"},
        {"upstream:\n  url: \"\"\nclerk:\n  secret_key: k\n", "upstream.url",
         "url:", "required in proxy mode"},
        {"upstream:\n  url: http://a:1\nclerk:\n  secret_key: \"\"\n  machine_secret_key: "
         "${EMPTY:-}\n",
         "clerk.machine_secret_key", "clerk:", "one of clerk.machine_secret_key or"},
        {"upstream:\n  url: http://a:1\n", "clerk.machine_secret_key",
         "upstream:", "one of clerk.machine_secret_key or"},
        // HTTP/2 (issue #18)
        {with_base("http2: yes please\n"), "http2", "http2:", "expected"},
        {with_base("limits:\n  max_concurrent_streams: 0\n"), "limits.max_concurrent_streams",
         "max_concurrent_streams:", ""},
        {"upstream:\n  url: http://a:1\n  protocol: http3\nclerk:\n  secret_key: k\n",
         "upstream.protocol", "protocol:", "expected http1, h2c or h2, got \"http3\""},
        {"upstream:\n  url: http://a:1\n  protocol: h2\nclerk:\n  secret_key: k\n",
         "upstream.protocol", "protocol:", "h2 needs an https:// upstream.url"},
        {"upstream:\n  url: https://a:1\n  protocol: h2c\nclerk:\n  secret_key: k\n",
         "upstream.protocol", "protocol:", "h2c is cleartext"},
    };
}

}  // namespace

TEST_CASE("each mistake is reported with its key, line and problem", "[config][load]") {
    for (const auto& c : error_cases()) {
        INFO("yaml:\n" << c.yaml);
        const auto r = load(c.yaml);
        INFO("errors:\n" << dump(r.errors));
        CHECK_FALSE(r.cfg);
        CHECK(r.errors.size() == 1);
        if (r.errors.empty()) {
            continue;
        }
        const config_error& e = r.errors[0];
        CHECK(e.file == "test.yaml");
        CHECK(e.key == c.key);
        CHECK(e.line == line_containing(c.yaml, c.marker));
        CHECK_THAT(e.problem, Catch::Matchers::Contains(c.problem));
    }
}

TEST_CASE("a YAML syntax error is reported with its line", "[config][load]") {
    const std::string yaml = "upstream:\n  url: http://a:1\nclerk: [\n  a: b: c\n";
    const auto r = load(yaml);
    INFO(dump(r.errors));
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].key.empty());
    CHECK(r.errors[0].line >= 3);
    CHECK_THAT(r.errors[0].problem, Catch::Matchers::StartsWith("YAML syntax error: "));
    CHECK_THAT(r.errors[0].to_string(), Catch::Matchers::StartsWith("test.yaml:"));

    const auto tab = load("upstream:\n  url: http://a:1\n\tclerk: x\n");
    REQUIRE(tab.errors.size() == 1);
    CHECK(tab.errors[0].line == 3);
}

TEST_CASE("an empty file reports both required keys", "[config][load]") {
    for (std::string_view yaml : {"", "# nothing\n", "---\n"}) {
        const auto r = load(yaml);
        INFO(dump(r.errors));
        REQUIRE(r.errors.size() == 2);
        CHECK(r.errors[0].key == "upstream.url");
        CHECK(r.errors[1].key == "clerk.machine_secret_key");
    }
}

TEST_CASE("a config with five mistakes reports all five at once", "[config][load]") {
    const std::string path = std::string(fixtures_dir) + "/five_mistakes.yaml";
    const auto r = load_config_file(path, make_test_env());
    INFO(dump(r.errors));
    CHECK_FALSE(r.cfg);
    REQUIRE(r.errors.size() == 5);
    const std::pair<int, std::string> expected[] = {
        {1, "listen"},
        {4, "upstream.timeout"},
        {6, "clerk.machine_secret_key"},
        {9, "routes[0].methods"},
        {12, "log.levle"},
    };
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(r.errors[i].file == path);
        CHECK(r.errors[i].line == expected[i].first);
        CHECK(r.errors[i].key == expected[i].second);
    }
    CHECK(r.errors[2].problem == "environment variable CLERK_TEST_UNSET_KEY is not set");
    CHECK(r.errors[0].to_string() == path + ":1: listen: bad port \"99999\" (0-65535)");
}

TEST_CASE("a missing config file is one error", "[config][load]") {
    const auto r =
        load_config_file(std::string(fixtures_dir) + "/does_not_exist.yaml", make_test_env());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].line == 0);
    CHECK_THAT(r.errors[0].problem, Catch::Matchers::StartsWith("cannot read config file"));
}

TEST_CASE("config_error::to_string", "[config][load]") {
    CHECK(config_error{"a.yaml", 3, "upstream.timeout", "bad"}.to_string() ==
          "a.yaml:3: upstream.timeout: bad");
    CHECK(config_error{"a.yaml", 0, "", "cannot read"}.to_string() == "a.yaml:0: cannot read");
}

TEST_CASE("every deploy/examples config loads with its documented environment",
          "[config][load][examples]") {
    const env_lookup env =
        fake_env({{"CLERK_MACHINE_SECRET_KEY", "ak_example"}, {"CLERK_MACHINE_ID", "mch_example"}});
    const std::filesystem::path dir = std::filesystem::path(CLERK_SOURCE_DIR) / "deploy/examples";
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".yaml") {
            continue;
        }
        names.push_back(entry.path().filename().string());
        const auto r = load_config_file(entry.path().string(), env);
        INFO(entry.path().string() << "\n" << dump(r.errors));
        CHECK(r.ok());
    }
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"demo.yaml", "gateway.yaml", "grpc-sidecar.yaml",
                                            "minimal.yaml", "sidecar.yaml"});
}

TEST_CASE("examples without their required environment fail naming the variable",
          "[config][load][examples]") {
    const auto r = load_config_file(std::string(CLERK_SOURCE_DIR) + "/deploy/examples/demo.yaml",
                                    fake_env({}));
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].problem == "environment variable CLERK_MACHINE_SECRET_KEY is not set");
}

TEST_CASE("auth.audience: recipient scoping of JWTs", "[config][load][audience]") {
    const auto warns_audience = [](const load_result& r) {
        return std::any_of(r.cfg->warnings.begin(), r.cfg->warnings.end(), [](const auto& w) {
            return w.find("auth.audience is not set") != std::string::npos &&
                   w.find("CLERK_MACHINE_ID") != std::string::npos;
        });
    };
    SECTION("a list, a single string, an env variable; duplicates folded") {
        const auto env = fake_env({{"SK", "sk_test_x"}, {"CLERK_MACHINE_ID", "mch_us"}});
        const auto r = load(with_base("  secret_key: sk_test_x\nauth:\n  audience: "
                                      "[\"${CLERK_MACHINE_ID}\", mch_b, mch_b]\n"),
                            env);
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(r.cfg->auth.audience == std::vector<std::string>{"mch_us", "mch_b"});
        CHECK_FALSE(warns_audience(r));
        const auto one = load(with_base("auth:\n  audience: mch_us\n"));
        REQUIRE(one.ok());
        CHECK(one.cfg->auth.audience == std::vector<std::string>{"mch_us"});
    }
    SECTION("unset while M2M JWTs can be verified: a warning naming the fix") {
        const auto r = load(with_base("  secret_key: sk_test_x\n"));  // JWKS can be fetched
        REQUIRE(r.ok());
        CHECK(r.cfg->auth.audience.empty());
        CHECK(warns_audience(r));
        CHECK_FALSE(warns_audience(load(base)));  // no key source: JWTs are refused anyway
    }
    SECTION("OAuth access tokens (verified locally as JWTs) warn too, until it is set") {
        const auto warns_oauth = [](const load_result& r) {
            return std::any_of(r.cfg->warnings.begin(), r.cfg->warnings.end(), [](const auto& w) {
                return w.find("OAuth access token in JWT format") != std::string::npos;
            });
        };
        const auto r =
            load(with_base("  secret_key: sk_test_x\nauth:\n  accepts_token: [oauth_token]\n"));
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(warns_oauth(r));
        CHECK_FALSE(warns_audience(r));  // the M2M warning is about M2M tokens only
        const auto set = load(with_base(
            "  secret_key: sk_test_x\nauth:\n  accepts_token: [oauth_token]\n  audience: [x]\n"));
        REQUIRE(set.ok());
        CHECK_FALSE(warns_oauth(set));
    }
    SECTION("no warning when M2M tokens are not accepted") {
        const auto r =
            load(with_base("  secret_key: sk_test_x\nauth:\n  accepts_token: [api_key]\n"));
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK_FALSE(warns_audience(r));
    }
    SECTION("an empty entry (an unset variable) is an error with its line, not a silent off") {
        const std::string y = with_base("auth:\n  audience:\n    - \"${EMPTY}\"\n");
        const auto r = load(y);
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].key == "auth.audience");
        CHECK(r.errors[0].line == line_containing(y, "${EMPTY}"));
        const auto bad = load(with_base("auth:\n  audience: {a: 1}\n"));
        REQUIRE(bad.errors.size() == 1);
        CHECK(bad.errors[0].key == "auth.audience");
    }
}

TEST_CASE("session tokens: keys required, auth.authorized_parties", "[config][load][session]") {
    const auto warns_parties = [](const load_result& r) {
        return std::any_of(r.cfg->warnings.begin(), r.cfg->warnings.end(), [](const auto& w) {
            return w.find("auth.authorized_parties is not set") != std::string::npos;
        });
    };
    SECTION("accepted with a key source and a list: no warning") {
        const auto r = load(with_base(
            "  secret_key: sk_test_x\nauth:\n  accepts_token: [session_token]\n"
            "  authorized_parties: [\"https://a.example.com\", https://b.example.com]\n"));
        INFO(dump(r.errors));
        REQUIRE(r.ok());
        CHECK(r.cfg->auth.authorized_parties ==
              std::vector<std::string>{"https://a.example.com", "https://b.example.com"});
        CHECK_FALSE(warns_parties(r));
    }
    SECTION("accepted without a list: a warning") {
        const auto r =
            load(with_base("  secret_key: sk_test_x\nauth:\n  accepts_token: [session_token]\n"));
        REQUIRE(r.ok());
        CHECK(warns_parties(r));
        CHECK_FALSE(warns_parties(load(base)));  // sessions not accepted
    }
    SECTION("accepted with neither clerk.jwt_key nor clerk.secret_key: an error") {
        const auto r = load(with_base("auth:\n  accepts_token: [m2m_token, session_token]\n"));
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].key == "clerk.jwt_key");
        CHECK(r.errors[0].problem.find("session_token") != std::string::npos);
    }
    SECTION("an empty entry is an error with its line") {
        const std::string y = with_base(
            "  secret_key: sk_test_x\nauth:\n  accepts_token: [session_token]\n"
            "  authorized_parties:\n    - \"${EMPTY}\"\n");
        const auto r = load(y);
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].key == "auth.authorized_parties");
        CHECK(r.errors[0].line == line_containing(y, "${EMPTY}"));
    }
}

TEST_CASE("HTTP/2 keys: defaults and values", "[config][load]") {
    const auto d = load(base);
    REQUIRE(d.cfg);
    CHECK_FALSE(d.cfg->http2);
    CHECK(d.cfg->limits.max_concurrent_streams == 100);
    CHECK(d.cfg->upstream.protocol == cfgns::upstream_protocol::http1);
    const auto r = load(
        "http2: true\nupstream:\n  url: http://127.0.0.1:50051\n  protocol: h2c\nclerk:\n"
        "  machine_secret_key: ak_test\nlimits:\n  max_concurrent_streams: 250\n");
    INFO(dump(r.errors));
    REQUIRE(r.cfg);
    CHECK(r.cfg->http2);
    CHECK(r.cfg->limits.max_concurrent_streams == 250);
    CHECK(r.cfg->upstream.protocol == cfgns::upstream_protocol::h2c);
    const auto tls = load(
        "upstream:\n  url: https://grpc.internal:443\n  protocol: h2\nclerk:\n"
        "  machine_secret_key: ak_test\n");
    INFO(dump(tls.errors));
    REQUIRE(tls.cfg);
    CHECK(tls.cfg->upstream.protocol == cfgns::upstream_protocol::h2);
}
