// clerk-m2m-proxy command line (docs/reference.md §2). Kept light on purpose: argument parsing,
// config loading and --check live here; everything that touches sockets is behind run_server().
#include "config/load.hpp"
#include "proxy/server.hpp"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

constexpr int exit_usage = 2;

constexpr std::string_view usage_text =
    "usage: clerk-m2m-proxy --config PATH [--check]\n"
    "       clerk-m2m-proxy --version\n"
    "       clerk-m2m-proxy --help\n"
    "\n"
    "Authenticating reverse proxy for Clerk machine (M2M) tokens.\n"
    "\n"
    "options:\n"
    "  --config PATH, --config=PATH  YAML config file (default: $CLERK_M2M_PROXY_CONFIG)\n"
    "  --check                       validate the config, print \"config ok\" and exit 0,\n"
    "                                or print every error (file:line: key: problem), exit 2\n"
    "  --version                     print the version and exit\n"
    "  --help, -h                    print this help and exit\n"
    "\n"
    "exit codes: 0 clean shutdown, 1 runtime failure, 2 invalid config or usage\n"
    "signals: SIGTERM/SIGINT drain and exit; SIGHUP reloads the config\n";

struct options {
    std::optional<std::string> config_path;
    bool check = false;
    bool version = false;
    bool help = false;
};

int usage_error(const std::string& message) {
    std::fprintf(stderr, "clerk-m2m-proxy: %s\n\n%.*s", message.c_str(),
                 static_cast<int>(usage_text.size()), usage_text.data());
    return exit_usage;
}

/// Parses argv; returns an exit code when parsing must stop (a usage error).
std::optional<int> parse_args(int argc, char** argv, options& opt) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--config" || arg.starts_with("--config=")) {
            if (opt.config_path) {
                return usage_error("--config given more than once");
            }
            if (arg == "--config") {
                if (i + 1 >= argc) {
                    return usage_error("--config needs a PATH");
                }
                opt.config_path = argv[++i];
            } else {
                opt.config_path = std::string(arg.substr(9));
            }
            if (opt.config_path->empty()) {
                return usage_error("--config needs a non-empty PATH");
            }
        } else if (arg == "--check") {
            opt.check = true;
        } else if (arg == "--version") {
            opt.version = true;
        } else if (arg == "--help" || arg == "-h") {
            opt.help = true;
        } else if (arg.starts_with("-")) {
            return usage_error("unknown option '" + std::string(arg) + "'");
        } else {
            return usage_error("unexpected argument '" + std::string(arg) + "'");
        }
    }
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    options opt;
    if (auto code = parse_args(argc, argv, opt)) {
        return *code;
    }
    if (opt.help) {
        std::fwrite(usage_text.data(), 1, usage_text.size(), stdout);
        return 0;
    }
    if (opt.version) {
        std::printf("clerk-m2m-proxy %s\n", CLERK_PROXY_VERSION);
        return 0;
    }
    if (!opt.config_path) {
        if (const char* env = std::getenv("CLERK_M2M_PROXY_CONFIG"); env && *env) {
            opt.config_path = env;
        } else {
            return usage_error("no config: pass --config PATH or set CLERK_M2M_PROXY_CONFIG");
        }
    }

    const auto loaded = clerk::config::load_config_file(*opt.config_path);
    for (const auto& e : loaded.errors) {
        std::fprintf(stderr, "%s\n", e.to_string().c_str());
    }
    if (!loaded.ok()) {
        return exit_usage;
    }
    // Warnings go to stderr in both modes: a warning must be visible before the first request.
    for (const auto& w : loaded.cfg->warnings) {
        std::fprintf(stderr, "warning: %s\n", w.c_str());
    }
    if (opt.check) {
        std::puts("config ok");
        return 0;
    }
    std::fflush(stderr);
    return clerk::proxy::run_server(loaded.cfg);
}
