// The config loader on valid files: every default, every key, accepted variants, the examples.
#include "config/load.hpp"
#include "load_fixtures.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace clerk::testing::load_fixtures;
using clerk::config::env_lookup;
using clerk::config::load_config_file;
namespace core = clerk::core;
namespace cfgns = clerk::config;

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
