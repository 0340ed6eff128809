// clerk-emulator: a local stand-in for Clerk's M2M Backend API (docs/reference.md §10).
//
//   clerk-emulator [--listen HOST:PORT] [--tls-listen HOST:PORT --tls-cert F --tls-key F]
//                  [--secret-key sk_test_...] [--latency 30ms] [--machine NAME]...
//                  [--state-file F]
//
// Prints `clerk-emulator listening on http(s)://HOST:PORT` per listener, then one JSON line
// per --machine, and runs until SIGINT/SIGTERM (exit 0).

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>

#include "tests/emulator/emulator_state.hpp"
#include "tests/emulator/http_server.hpp"
#include "tests/emulator/jwt_signer.hpp"
#include "tests/emulator/router.hpp"

namespace {

namespace net = boost::asio;
namespace emu = clerk::emulator;
using tcp = net::ip::tcp;

struct options {
    std::string listen = "127.0.0.1:0";
    std::optional<std::string> tls_listen;
    std::string tls_cert, tls_key;
    std::string secret_key = "sk_test_emulator";
    std::chrono::milliseconds latency{0};
    std::vector<std::string> machines;
    std::string state_file;
};

[[noreturn]] void usage(const std::string& problem) {
    std::cerr << "clerk-emulator: " << problem << "\n"
              << "usage: clerk-emulator [--listen HOST:PORT] [--tls-listen HOST:PORT --tls-cert F "
                 "--tls-key F]\n"
                 "                      [--secret-key sk_...] [--latency 30ms] [--machine "
                 "NAME]... [--state-file F]\n";
    std::exit(2);
}

/// "30ms", "2s" or a bare number of milliseconds.
std::chrono::milliseconds parse_latency(const std::string& text) {
    std::size_t used = 0;
    long long value = -1;
    try {
        value = std::stoll(text, &used);
    } catch (const std::exception&) {
        usage("bad --latency: " + text);
    }
    const std::string unit = text.substr(used);
    if (value < 0 || value > 600000 || (unit != "" && unit != "ms" && unit != "s")) {
        usage("bad --latency: " + text);
    }
    return std::chrono::milliseconds(unit == "s" ? value * 1000 : value);
}

/// "HOST:PORT" or "[v6]:PORT".
tcp::endpoint parse_endpoint(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) {
        usage("expected HOST:PORT, got " + text);
    }
    std::string host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (host == "localhost") {
        host = "127.0.0.1";
    }
    boost::system::error_code ec;
    const auto address = net::ip::make_address(host, ec);
    unsigned long port = 65536;
    try {
        port = std::stoul(text.substr(colon + 1));
    } catch (const std::exception&) {
    }
    if (ec || port > 65535) {
        usage("bad listen address " + text);
    }
    return {address, static_cast<unsigned short>(port)};
}

options parse_args(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage(arg + " needs a value");
            }
            return argv[++i];
        };
        if (arg == "--listen") {
            opt.listen = value();
        } else if (arg == "--tls-listen") {
            opt.tls_listen = value();
        } else if (arg == "--tls-cert") {
            opt.tls_cert = value();
        } else if (arg == "--tls-key") {
            opt.tls_key = value();
        } else if (arg == "--secret-key") {
            opt.secret_key = value();
        } else if (arg == "--latency") {
            opt.latency = parse_latency(value());
        } else if (arg == "--machine") {
            opt.machines.push_back(value());
        } else if (arg == "--state-file") {
            opt.state_file = value();
        } else if (arg == "--help" || arg == "-h") {
            usage("help");
        } else {
            usage("unknown argument " + arg);
        }
    }
    if (opt.tls_listen && (opt.tls_cert.empty() || opt.tls_key.empty())) {
        usage("--tls-listen needs --tls-cert and --tls-key");
    }
    if (opt.secret_key.rfind("sk_", 0) != 0) {
        usage("--secret-key must start with sk_");
    }
    return opt;
}

std::string url(const char* scheme, const tcp::endpoint& ep) {
    const auto host =
        ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
    return std::string(scheme) + "://" + host + ":" + std::to_string(ep.port());
}

/// --state-file: machines, tokens and signing keys survive a restart (knobs and stats do not).
bool load_state(const std::string& path, emu::emulator_state& state, emu::jwt_signer& signer) {
    std::ifstream in(path);
    const auto doc = nlohmann::json::parse(in, nullptr, false);
    return !doc.is_discarded() && doc.is_object() && doc.contains("state") &&
           doc.contains("signing_keys") && state.load_json(doc["state"]) &&
           signer.load_json(doc["signing_keys"]);
}

void save_state(const std::string& path, emu::emulator_state& state, emu::jwt_signer& signer) {
    const nlohmann::json doc = {
        {"version", 1}, {"state", state.to_json()}, {"signing_keys", signer.to_json()}};
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << doc.dump(2) << "\n";
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::fprintf(stderr, "clerk-emulator: cannot write %s: %s\n", path.c_str(),
                     ec.message().c_str());
    }
    state.dirty = false;
}

}  // namespace

int main(int argc, char** argv) {
    const options opt = parse_args(argc, argv);
    try {
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        emu::emulator_state state(opt.secret_key);
        emu::jwt_signer signer;
        state.latency = opt.latency;
        if (!opt.state_file.empty() && std::filesystem::exists(opt.state_file) &&
            !load_state(opt.state_file, state, signer)) {
            std::cerr << "clerk-emulator: cannot load state file " << opt.state_file << "\n";
            return 1;
        }

        // --machine: reuse a machine of that name from the state file, else create it; then
        // scope every --machine machine to all the others.
        std::vector<std::string> ids;
        for (const auto& name : opt.machines) {
            emu::machine* m = state.find_machine_by_name(name);
            ids.push_back(m != nullptr ? m->id : state.create_machine(name, {}, now).id);
        }
        for (const auto& from : ids) {
            for (const auto& to : ids) {
                if (from != to) {
                    state.add_scope(from, to, now);
                }
            }
        }

        net::io_context ioc(1);
        emu::router api(state, signer);
        emu::http_server server(ioc, api, [&] {
            if (!opt.state_file.empty() && state.dirty) {
                save_state(opt.state_file, state, signer);
            }
        });

        const auto plain = server.listen(parse_endpoint(opt.listen), nullptr);
        std::optional<net::ssl::context> tls;
        std::optional<tcp::endpoint> secure;
        if (opt.tls_listen) {
            tls.emplace(net::ssl::context::tls_server);
            tls->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                             net::ssl::context::no_sslv3);
            tls->use_certificate_chain_file(opt.tls_cert);
            tls->use_private_key_file(opt.tls_key, net::ssl::context::pem);
            secure = server.listen(parse_endpoint(*opt.tls_listen), &*tls);
        }
        if (!opt.state_file.empty()) {
            save_state(opt.state_file, state, signer);
        }

        std::cout << "clerk-emulator listening on " << url("http", plain) << "\n";
        if (secure) {
            std::cout << "clerk-emulator listening on " << url("https", *secure) << "\n";
        }
        for (const auto& id : ids) {
            const emu::machine& m = *state.find_machine(id);
            std::cout
                << nlohmann::json{{"machine",
                                   {{"id", m.id}, {"name", m.name}, {"secret_key", m.secret_key}}}}
                       .dump()
                << "\n";
        }
        std::cout.flush();

        net::signal_set signals(ioc, SIGINT, SIGTERM);
        signals.async_wait([&](const boost::system::error_code&, int) { ioc.stop(); });
        ioc.run();
        if (!opt.state_file.empty() && state.dirty) {
            save_state(opt.state_file, state, signer);
        }
        return 0;
    } catch (const std::exception& ex) {
        std::cerr << "clerk-emulator: " << ex.what() << "\n";
        return 1;
    }
}
