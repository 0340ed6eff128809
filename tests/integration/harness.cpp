#include "harness.hpp"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace clerk::it {

// --- temp_dir

temp_dir::temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/clerk-it-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    path_ = tmpl;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string temp_dir::write(const std::string& name, const std::string& content) const {
    const auto p = path_ / name;
    // Write to a sibling and rename, so a reader (a reloading proxy) never sees half a file.
    const auto tmp = path_ / (name + ".tmp");
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << content;
    }
    std::filesystem::rename(tmp, p);
    return p.string();
}

// --- process

process::process(const std::string& binary, const std::vector<std::string>& args,
                 const std::vector<std::pair<std::string, std::string>>& env) {
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    // Everything exec needs is prepared before fork (only async-signal-safe calls after it).
    std::vector<std::string> argv_s{binary};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view kv(*e);
        const auto name = kv.substr(0, kv.find('='));
        bool overridden = false;
        for (const auto& [k, v] : env) {
            overridden = overridden || k == name;
        }
        if (!overridden) {
            env_s.emplace_back(kv);
        }
    }
    for (const auto& [k, v] : env) {
        env_s.push_back(k + "=" + v);
    }
    std::vector<char*> envp;
    for (auto& e : env_s) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid_ == 0) {
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        ::execve(binary.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    readers_.emplace_back(&process::reader, this, out[0]);
    readers_.emplace_back(&process::reader, this, err[0]);
}

process::~process() {
    if (!exit_code_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    for (auto& t : readers_) {
        t.join();
    }
}

void process::reader(int fd) {
    std::string partial;
    std::array<char, 4096> buf{};
    for (;;) {
        const auto n = ::read(fd, buf.data(), buf.size());
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            break;
        }
        partial.append(buf.data(), static_cast<std::size_t>(n));
        std::size_t pos = 0;
        std::vector<std::string> complete;
        for (auto nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n', pos)) {
            complete.push_back(partial.substr(pos, nl - pos));
            pos = nl + 1;
        }
        partial.erase(0, pos);
        if (!complete.empty()) {
            std::lock_guard lock(mu_);
            for (auto& l : complete) {
                lines_.push_back(std::move(l));
            }
            cv_.notify_all();
        }
    }
    ::close(fd);
    std::lock_guard lock(mu_);
    if (!partial.empty()) {
        lines_.push_back(partial);
    }
    --open_pipes_;
    cv_.notify_all();
}

std::optional<std::vector<std::string>> process::wait_for_line(const std::regex& re,
                                                               duration timeout, std::size_t from) {
    std::unique_lock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t next = from;
    for (;;) {
        for (; next < lines_.size(); ++next) {
            std::smatch m;
            if (std::regex_search(lines_[next], m, re)) {
                std::vector<std::string> groups;
                for (const auto& g : m) {
                    groups.push_back(g.str());
                }
                return groups;
            }
        }
        if (open_pipes_ == 0) {
            return std::nullopt;
        }
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next >= lines_.size()) {
            return std::nullopt;
        }
    }
}

std::vector<std::string> process::lines() const {
    std::lock_guard lock(mu_);
    return lines_;
}

std::size_t process::line_count() const {
    std::lock_guard lock(mu_);
    return lines_.size();
}

std::string process::output() const {
    std::string out;
    for (const auto& l : lines()) {
        out += l;
        out += '\n';
    }
    return out;
}

void process::signal(int sig) {
    if (!exit_code_) {
        ::kill(pid_, sig);
    }
}

bool process::running() {
    if (exit_code_) {
        return false;
    }
    int status = 0;
    const auto r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }
    return true;
}

std::optional<int> process::wait_exit(duration timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    {
        // The pipes close when the process exits: wait for that notification first.
        std::unique_lock lock(mu_);
        cv_.wait_until(lock, deadline, [this] { return open_pipes_ == 0; });
    }
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(5ms);
    }
    return exit_code_;
}

// --- helpers

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    if (fd >= 0) {
        ::close(fd);
    }
    if (!ok) {
        throw std::runtime_error("free_port: no socket");
    }
    return ntohs(a.sin_port);
}

bool eventually(const std::function<bool()>& cond, duration timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!cond()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

std::string basic_config(const std::string& upstream_url, const std::string& routes_yaml,
                         const std::string& extra) {
    std::string y;
    y += "listen: \"127.0.0.1:0\"\n";
    y += "upstream:\n  url: \"" + upstream_url + "\"\n  connect_timeout: 2s\n  timeout: 10s\n";
    y += "clerk:\n  api_url: \"http://127.0.0.1:1\"\n  machine_secret_key: \"ak_test\"\n"
         "  timeout: 250ms\n  retries: 0\n";
    y += "admin:\n  listen: \"127.0.0.1:0\"\n";
    y += "log:\n  level: info\n  format: json\n";
    y += "routes:\n  - path: /open/*\n    auth: none\n";
    y += routes_yaml;
    y += extra;
    return y;
}

proxy_process::proxy_process(const temp_dir& dir, const std::string& yaml,
                             const std::vector<std::pair<std::string, std::string>>& env) {
    config_path_ = dir.write("proxy.yaml", yaml);
    proc_ = std::make_unique<process>(CLERK_PROXY_BIN,
                                      std::vector<std::string>{"--config", config_path_}, env);
    const auto main_line =
        proc_->wait_for_line(std::regex(R"re("msg":"listening on 127\.0\.0\.1:(\d+)")re"), 20s);
    if (!main_line) {
        throw std::runtime_error("proxy did not start; output:\n" + proc_->output());
    }
    port_ = static_cast<std::uint16_t>(std::stoi((*main_line)[1]));
    const bool admin_disabled = yaml.find("admin:\n  listen: \"\"") != std::string::npos;
    if (yaml.find("admin:") != std::string::npos && !admin_disabled) {
        const auto admin_line =
            proc_->wait_for_line(std::regex(R"re(admin listening on 127\.0\.0\.1:(\d+))re"), 20s);
        if (admin_line) {
            admin_port_ = static_cast<std::uint16_t>(std::stoi((*admin_line)[1]));
        }
    }
}

emulator_process::emulator_process(const std::vector<std::string>& machine_names,
                                   const std::vector<std::string>& extra_args) {
    std::vector<std::string> args{"--listen", "127.0.0.1:0"};
    for (const auto& m : machine_names) {
        args.push_back("--machine");
        args.push_back(m);
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    proc_ = std::make_unique<process>(CLERK_EMULATOR_BIN, args);
    const auto line = proc_->wait_for_line(
        std::regex(R"(clerk-emulator listening on http://127\.0\.0\.1:(\d+))"), 20s);
    if (!line) {
        throw std::runtime_error("emulator did not start; output:\n" + proc_->output());
    }
    port_ = static_cast<std::uint16_t>(std::stoi((*line)[1]));
    std::size_t from = 0;
    for (std::size_t i = 0; i < machine_names.size(); ++i) {
        const auto m = proc_->wait_for_line(std::regex(R"(^\{"machine":.*\}$)"), 10s, from);
        if (!m) {
            throw std::runtime_error("emulator did not print machine " + machine_names[i]);
        }
        const auto lines = proc_->lines();
        for (std::size_t j = from; j < lines.size(); ++j) {
            if (lines[j] == (*m)[0]) {
                from = j + 1;
                break;
            }
        }
        const auto j = nlohmann::json::parse((*m)[0]);
        machines_.push_back({j["machine"].value("id", ""), j["machine"].value("name", ""),
                             j["machine"].value("secret_key", "")});
    }
}

test_pki make_test_pki(const temp_dir& dir, const std::string& prefix,
                       const std::vector<std::string>& dns_names,
                       const std::vector<std::string>& ip_sans) {
    const auto p = [&](const std::string& n) { return (dir.path() / (prefix + n)).string(); };
    // Appended piece by piece: GCC 12 at -O3 misreads `const char* + std::string` here
    // (-Wstringop-overflow, a known false positive).
    std::string san = "subjectAltName=";
    auto add = [&san, first = true](std::string_view kind, const std::string& v) mutable {
        if (!first) {
            san += ',';
        }
        first = false;
        san += kind;
        san += v;
    };
    for (const auto& d : dns_names) {
        add("DNS:", d);
    }
    for (const auto& ip : ip_sans) {
        add("IP:", ip);
    }
    dir.write(prefix + "ext.cnf", san +
                                      "\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,"
                                      "keyEncipherment\nextendedKeyUsage=serverAuth\n");
    const std::string q = " 2>/dev/null";
    const std::vector<std::string> cmds{
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
            p("ca.key") + " -out " + p("ca.crt") + " -days 2 -subj /CN=" + prefix +
            "test-ca -addext basicConstraints=critical,CA:TRUE -addext "
            "keyUsage=critical,keyCertSign,cRLSign" +
            q,
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
            p("server.key") + " -out " + p("server.csr") +
            " -subj /CN=" + (dns_names.empty() ? std::string("server") : dns_names.front()) + q,
        "openssl x509 -req -in " + p("server.csr") + " -CA " + p("ca.crt") + " -CAkey " +
            p("ca.key") + " -CAcreateserial -out " + p("server.crt") + " -days 2 -extfile " +
            p("ext.cnf") + q,
    };
    for (const auto& c : cmds) {
        if (std::system(c.c_str()) != 0) {
            throw std::runtime_error("openssl failed: " + c);
        }
    }
    return {p("ca.crt"), p("server.crt"), p("server.key")};
}

// --- resource probes

long proc_open_fds(int pid) {
    std::error_code ec;
    std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec);
    if (ec) {
        return -1;
    }
    long n = 0;
    for (const auto& entry : it) {
        (void)entry;
        ++n;
    }
    return n;
}

long proc_rss_kib(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stol(line.substr(6));  // "VmRSS:\t   1234 kB"
        }
    }
    return -1;
}

std::optional<double> scrape_metric(std::uint16_t admin_port, const std::string& series) {
    http_client c(admin_port);
    const auto r = c.get("/metrics");
    if (r.status != 200) {
        throw std::runtime_error("GET /metrics: " + std::to_string(r.status));
    }
    std::istringstream in(r.body);
    std::string line;
    while (std::getline(in, line)) {
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
            line[series.size()] == ' ') {
            return std::stod(line.substr(series.size() + 1));
        }
    }
    return std::nullopt;
}

}  // namespace clerk::it
