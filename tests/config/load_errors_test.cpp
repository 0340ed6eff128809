// The config loader on broken files: each mistake with its key, line and problem; syntax errors.
#include "config/load.hpp"
#include "load_fixtures.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace clerk::testing::load_fixtures;
using clerk::config::config_error;
using clerk::config::load_config_file;

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
