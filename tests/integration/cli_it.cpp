// The clerk-m2m-proxy command line (docs/reference.md §2), run as a real process: --check on good
// and bad configs, --version, --help and usage errors. No ports are bound and nothing sleeps.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

extern char** environ;

namespace {

struct run_result {
    int exit_code = -1;
    std::string out;
    std::string err;
};

/// Runs the proxy binary with `args` and the current environment minus
/// CLERK_M2M_PROXY_CONFIG, plus `env`. Captures stdout and stderr separately.
run_result run_proxy(const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view kv = *e;
        const std::string name(kv.substr(0, kv.find('=')));
        if (name != "CLERK_M2M_PROXY_CONFIG" && !env.contains(name)) {
            env_strings.emplace_back(kv);
        }
    }
    for (const auto& [k, v] : env) {
        std::string kv = k;
        kv += '=';
        kv += v;
        env_strings.push_back(std::move(kv));
    }
    std::vector<char*> envp;
    envp.reserve(env_strings.size() + 1);
    for (auto& s : env_strings) {
        envp.push_back(s.data());
    }
    envp.push_back(nullptr);
    std::string bin = CLERK_PROXY_BIN;
    std::vector<std::string> argv_strings{bin};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    argv.reserve(argv_strings.size() + 1);
    for (auto& s : argv_strings) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);

    int out_pipe[2];
    int err_pipe[2];
    REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        ::execve(bin.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);

    // Drain both pipes until EOF so that neither side can block on a full pipe.
    run_result r;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&r.out, &r.err};
    int open_fds = 2;
    while (open_fds > 0) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) {
                continue;
            }
            char buf[4096];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

/// A temporary directory removed with its files at scope exit.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "cli_it.XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    std::string write(const std::string& name, std::string_view text) const {
        const auto p = path_ / name;
        std::ofstream(p) << text;
        return p.string();
    }

private:
    std::filesystem::path path_;
};

constexpr std::string_view good_config =
    "listen: \"127.0.0.1:0\"\n"
    "upstream:\n"
    "  url: http://127.0.0.1:3000\n"
    "clerk:\n"
    "  api_url: \"${CLI_IT_API_URL:-http://127.0.0.1:8090}\"\n"
    "  machine_secret_key: \"${CLI_IT_KEY}\"\n";

constexpr std::string_view bad_config =
    "listen: \"0.0.0.0:99999\"\n"
    "upstream:\n"
    "  url: http://127.0.0.1:3000\n"
    "  timeout: 5\n"
    "clerk:\n"
    "  machine_secret_key: \"${CLI_IT_UNSET}\"\n";

std::map<std::string, std::string> key_env() {
    return {{"CLI_IT_KEY", "ak_cli"}};
}

}  // namespace

TEST_CASE("cli: --version prints the version", "[cli]") {
    const auto r = run_proxy({"--version"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == std::string("clerk-m2m-proxy ") + CLERK_PROXY_VERSION + "\n");
    CHECK(r.err.empty());
}

TEST_CASE("cli: --help prints the usage", "[cli]") {
    for (const char* flag : {"--help", "-h"}) {
        const auto r = run_proxy({flag});
        CHECK(r.exit_code == 0);
        CHECK_THAT(r.out, Catch::Matchers::StartsWith("usage: clerk-m2m-proxy --config PATH"));
        CHECK_THAT(r.out, Catch::Matchers::Contains("--check"));
        CHECK_THAT(r.out, Catch::Matchers::Contains("CLERK_M2M_PROXY_CONFIG"));
        CHECK(r.err.empty());
    }
}

TEST_CASE("usage errors exit 2 with the usage on stderr", "[cli]") {
    struct usage_case {
        std::vector<std::string> args;
        std::string message;
    };
    const usage_case cases[] = {
        {{"--bogus"}, "unknown option '--bogus'"},
        {{"--config", "x.yaml", "-v"}, "unknown option '-v'"},
        {{"--check"}, "no config: pass --config PATH or set CLERK_M2M_PROXY_CONFIG"},
        {{}, "no config"},
        {{"--config"}, "--config needs a PATH"},
        {{"--config="}, "--config needs a non-empty PATH"},
        {{"--config", "a.yaml", "--config", "b.yaml"}, "--config given more than once"},
        {{"stray"}, "unexpected argument 'stray'"},
    };
    for (const auto& c : cases) {
        INFO("args: " << (c.args.empty() ? "" : c.args[0]));
        const auto r = run_proxy(c.args);
        CHECK(r.exit_code == 2);
        CHECK(r.out.empty());
        CHECK_THAT(r.err, Catch::Matchers::StartsWith("clerk-m2m-proxy: " + c.message));
        CHECK_THAT(r.err, Catch::Matchers::Contains("usage: clerk-m2m-proxy"));
    }
}

TEST_CASE("cli: --check accepts a good config", "[cli]") {
    temp_dir dir;
    const std::string path = dir.write("good.yaml", good_config);
    SECTION("--config PATH --check") {
        const auto r = run_proxy({"--config", path, "--check"}, key_env());
        CHECK(r.exit_code == 0);
        CHECK(r.out == "config ok\n");
        CHECK(r.err.empty());
    }
    SECTION("--check --config=PATH") {
        const auto r = run_proxy({"--check", "--config=" + path}, key_env());
        CHECK(r.exit_code == 0);
        CHECK(r.out == "config ok\n");
    }
    SECTION("the path from CLERK_M2M_PROXY_CONFIG") {
        auto env = key_env();
        env["CLERK_M2M_PROXY_CONFIG"] = path;
        const auto r = run_proxy({"--check"}, env);
        CHECK(r.exit_code == 0);
        CHECK(r.out == "config ok\n");
    }
    SECTION("warnings go to stderr, still exit 0") {
        auto env = key_env();
        env["CLI_IT_API_URL"] = "http://clerk.example:8080";
        const auto r = run_proxy({"--config", path, "--check"}, env);
        CHECK(r.exit_code == 0);
        CHECK(r.out == "config ok\n");
        CHECK_THAT(r.err, Catch::Matchers::StartsWith("warning: clerk.api_url uses http://"));
    }
}

TEST_CASE("cli: --check warns when M2M JWTs are accepted with no auth.audience", "[cli]") {
    temp_dir dir;
    // Built by appending: GCC 12 misreads `std::string + "literal"` temporaries at -O1 and up
    // (-Warray-bounds, a known false positive).
    std::string unscoped_yaml(good_config);
    unscoped_yaml += "  secret_key: \"${CLI_IT_SK}\"\n";
    std::string scoped_yaml = unscoped_yaml;
    scoped_yaml += "auth:\n  audience: [\"${CLERK_MACHINE_ID}\"]\n";
    const std::string unscoped = dir.write("unscoped.yaml", unscoped_yaml);
    auto env = key_env();
    env["CLI_IT_SK"] = "sk_test_cli";
    const auto r = run_proxy({"--config", unscoped, "--check"}, env);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "config ok\n");
    CHECK_THAT(r.err, Catch::Matchers::Contains("warning: auth.audience is not set") &&
                          Catch::Matchers::Contains("${CLERK_MACHINE_ID}"));

    const std::string scoped = dir.write("scoped.yaml", scoped_yaml);
    env["CLERK_MACHINE_ID"] = "mch_cli";
    const auto s = run_proxy({"--config", scoped, "--check"}, env);
    CHECK(s.exit_code == 0);
    CHECK(s.err.empty());
    env.erase("CLERK_MACHINE_ID");
    const auto unset = run_proxy({"--config", scoped, "--check"}, env);
    CHECK(unset.exit_code == 2);
    CHECK_THAT(unset.err,
               Catch::Matchers::Contains(
                   ":9: auth.audience: environment variable CLERK_MACHINE_ID is not set"));
}

TEST_CASE("cli: --check prints every error of a bad config and exits 2", "[cli]") {
    temp_dir dir;
    const std::string path = dir.write("bad.yaml", bad_config);
    const auto r = run_proxy({"--config", path, "--check"});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err ==
          path + ":1: listen: bad port \"99999\" (0-65535)\n" + path +
              ":4: upstream.timeout: bad duration \"5\" (expected an integer and a unit: 250ms, "
              "2s, 5m, 1h)\n" +
              path +
              ":6: clerk.machine_secret_key: environment variable CLI_IT_UNSET is not set\n");

    SECTION("a good config without its environment names the variable") {
        const std::string good = dir.write("good.yaml", good_config);
        const auto g = run_proxy({"--config", good, "--check"});
        CHECK(g.exit_code == 2);
        CHECK(g.err ==
              good + ":6: clerk.machine_secret_key: environment variable CLI_IT_KEY is not set\n");
    }
    SECTION("a missing file") {
        const std::string missing = (std::filesystem::temp_directory_path() / "cli_it_nope.yaml");
        const auto m = run_proxy({"--config", missing, "--check"});
        CHECK(m.exit_code == 2);
        CHECK_THAT(m.err, Catch::Matchers::StartsWith(missing + ":0: cannot read config file"));
    }
    SECTION("an invalid config also refuses to run") {
        const auto run = run_proxy({"--config", path});
        CHECK(run.exit_code == 2);
        CHECK(run.err == r.err);
    }
}

TEST_CASE("every deploy/examples config passes --check", "[cli]") {
    const std::map<std::string, std::string> env{{"CLERK_MACHINE_SECRET_KEY", "ak_example"},
                                                 {"CLERK_SECRET_KEY", "sk_test_example"},
                                                 {"CLERK_MACHINE_ID", "mch_example"}};
    for (const char* name :
         {"demo.yaml", "minimal.yaml", "sidecar.yaml", "gateway.yaml", "grpc-sidecar.yaml"}) {
        const std::string path = std::string(CLERK_SOURCE_DIR) + "/deploy/examples/" + name;
        INFO(path);
        const auto r = run_proxy({"--config", path, "--check"}, env);
        CHECK(r.exit_code == 0);
        CHECK(r.out == "config ok\n");
        CHECK(r.err.empty());
    }
}

TEST_CASE("cli: --check refuses an upstream in forward_auth mode and none in proxy mode", "[cli]") {
    temp_dir dir;
    const std::string with_upstream =
        dir.write("fa.yaml", "mode: forward_auth\n" + std::string(good_config));
    const auto r = run_proxy({"--config", with_upstream, "--check"}, key_env());
    CHECK(r.exit_code == 2);
    CHECK(r.err == with_upstream +
                       ":3: upstream: not allowed in forward_auth mode (the gateway forwards the "
                       "request; remove the upstream section or use mode: proxy)\n");

    const std::string no_upstream = dir.write(
        "proxy.yaml", "listen: \"127.0.0.1:0\"\nclerk:\n  machine_secret_key: \"${CLI_IT_KEY}\"\n");
    const auto p = run_proxy({"--config", no_upstream, "--check"}, key_env());
    CHECK(p.exit_code == 2);
    CHECK_THAT(p.err, Catch::Matchers::Contains("upstream.url: required in proxy mode"));

    const std::string forward_auth =
        dir.write("fa-ok.yaml",
                  "mode: forward_auth\nlisten: \"127.0.0.1:0\"\nclerk:\n  machine_secret_key: "
                  "\"${CLI_IT_KEY}\"\n");
    const auto ok = run_proxy({"--config", forward_auth, "--check"}, key_env());
    CHECK(ok.exit_code == 0);
}
