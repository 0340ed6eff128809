#include "config/load.hpp"

#include "config/loader.hpp"
#include "config/values.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace clerk::config {

// --- public entry points -------------------------------------------------------------------

std::string config_error::to_string() const {
    std::string out = file + ":" + std::to_string(line) + ": ";
    if (!key.empty()) {
        out += key + ": ";
    }
    return out + problem;
}

env_lookup process_env() {
    return [](std::string_view name) -> std::optional<std::string> {
        const char* v = std::getenv(std::string(name).c_str());
        if (v == nullptr) {
            return std::nullopt;
        }
        return std::string(v);
    };
}

load_result load_config_string(std::string_view yaml, const std::string& file_name,
                               const env_lookup& env) {
    load_result result;
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        // A syntax error stops parsing: it is the only problem we can report for this file.
        const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
        result.errors.push_back({file_name, line, "", "YAML syntax error: " + e.msg});
        return result;
    }
    auto cfg = std::make_shared<config>();
    cfg->source_path = file_name;
    loader l(file_name, env, result.errors);
    l.load(root, *cfg);
    // Report in file order; cross-key problems found after the walk slot in by line.
    std::stable_sort(result.errors.begin(), result.errors.end(),
                     [](const config_error& a, const config_error& b) { return a.line < b.line; });
    if (result.errors.empty()) {
        result.cfg = std::move(cfg);
    }
    return result;
}

load_result load_config_file(const std::string& path, const env_lookup& env) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        load_result result;
        const int err = errno;
        result.errors.push_back(
            {path, 0, "", std::string("cannot read config file: ") + std::strerror(err)});
        return result;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return load_config_string(text.str(), path, env);
}

// --- field appliers ------------------------------------------------------------------------

loader::apply_fn loader::to_string(std::string& out) {
    return [this, &out](const YAML::Node& n, const std::string& k) {
        if (auto v = r_.string(n, k)) {
            out = std::move(*v);
        }
    };
}

loader::apply_fn loader::to_bool(bool& out) {
    return [this, &out](const YAML::Node& n, const std::string& k) {
        if (auto v = r_.boolean(n, k)) {
            out = *v;
        }
    };
}

loader::apply_fn loader::to_duration(millis& out, bool allow_zero) {
    return [this, &out, allow_zero](const YAML::Node& n, const std::string& k) {
        if (auto v = r_.duration(n, k, allow_zero)) {
            out = *v;
        }
    };
}

loader::apply_fn loader::to_file(std::string& out, file_check check) {
    return [this, &out, check](const YAML::Node& n, const std::string& k) {
        auto v = r_.string(n, k);
        if (!v) {
            return;
        }
        if (!v->empty()) {
            if (auto problem = check(*v); !problem.empty()) {
                r_.error(n, k, problem);
                return;
            }
        }
        out = std::move(*v);
    };
}

loader::apply_fn loader::to_ca_file(std::string& out) {
    return to_file(out, ca_file_problem);
}

loader::apply_fn loader::to_listen(listen_address& out) {
    return [this, &out](const YAML::Node& n, const std::string& k) {
        auto v = r_.string(n, k);
        if (!v) {
            return;
        }
        std::string problem;
        if (auto addr = parse_listen_address(*v, problem)) {
            out = std::move(*addr);
        } else {
            r_.error(n, k, problem);
        }
    };
}

// --- sections ------------------------------------------------------------------------------

void loader::load(const YAML::Node& root, config& cfg) {
    if (!root.Mark().is_null()) {
        root_line_ = root.Mark().line + 1;
    }
    // The derived fields of the default api_url, in case the file does not set one.
    (void)parse_api_url(cfg.clerk.api_url, cfg.clerk);
    if (top_level(root, cfg)) {
        cross_checks(cfg);
    }
}

bool loader::top_level(const YAML::Node& root, config& cfg) {
    const field fields[] = {
        {"version",
         [this](const YAML::Node& n, const std::string& k) {
             // docs/reference.md §3 is "version 1": accept the marker, refuse any other version.
             (void)r_.integer(n, k, 1, 1);
         }},
        {"mode", [this, &cfg](const YAML::Node& n, const std::string& k) { mode(n, k, cfg.mode); }},
        {"listen", to_listen(cfg.listen)},
        {"tls", [this, &cfg](const YAML::Node& n, const std::string& k) { tls(n, k, cfg.tls); }},
        {"upstream",
         [this, &cfg](const YAML::Node& n, const std::string& k) { upstream(n, k, cfg.upstream); }},
        {"clerk",
         [this, &cfg](const YAML::Node& n, const std::string& k) { clerk(n, k, cfg.clerk); }},
        {"auth", [this, &cfg](const YAML::Node& n, const std::string& k) { auth(n, k, cfg.auth); }},
        {"cache",
         [this, &cfg](const YAML::Node& n, const std::string& k) { cache(n, k, cfg.cache); }},
        {"headers",
         [this, &cfg](const YAML::Node& n, const std::string& k) { headers(n, k, cfg.headers); }},
        {"routes",
         [this, &cfg](const YAML::Node& n, const std::string& k) { routes(n, k, cfg.routes); }},
        {"admin",
         [this, &cfg](const YAML::Node& n, const std::string& k) { admin(n, k, cfg.admin); }},
        {"limits",
         [this, &cfg](const YAML::Node& n, const std::string& k) { limits(n, k, cfg.limits); }},
        {"shutdown",
         [this, &cfg](const YAML::Node& n, const std::string& k) { shutdown(n, k, cfg.shutdown); }},
        {"log", [this, &cfg](const YAML::Node& n, const std::string& k) { log(n, k, cfg.log); }},
        {"threads", to_integer(cfg.threads, 0, 1024)},
        {"http2", to_bool(cfg.http2)},
    };
    return r_.visit(root, "", fields);
}

void loader::mode(const YAML::Node& n, const std::string& key, proxy_mode& out) {
    auto text = r_.string(n, key);
    if (!text) {
        return;
    }
    if (*text == "proxy") {
        out = proxy_mode::proxy;
    } else if (*text == "forward_auth") {
        out = proxy_mode::forward_auth;
    } else {
        r_.error(n, key, "expected proxy or forward_auth, got \"" + *text + "\"");
    }
}

void loader::tls(const YAML::Node& n, const std::string& key, tls_config& out) {
    const field fields[] = {
        {"cert_file", to_file(out.cert_file)},
        {"key_file", to_file(out.key_file)},
    };
    r_.visit(n, key, fields);
}

void loader::upstream(const YAML::Node& n, const std::string& key, upstream_config& out) {
    const field fields[] = {
        {"url",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text || text->empty()) {
                 return;  // emptiness is checked with the mode, in cross_checks()
             }
             if (auto problem = parse_upstream_url(*text, out); !problem.empty()) {
                 r_.error(v, k, problem);
             }
         }},
        {"connect_timeout", to_duration(out.connect_timeout, false)},
        {"timeout", to_duration(out.timeout, false)},
        {"max_idle_connections", to_integer(out.max_idle_connections, 0, 1'000'000)},
        {"preserve_host", to_bool(out.preserve_host)},
        {"tls_verify", to_bool(out.tls_verify)},
        {"ca_file", to_ca_file(out.ca_file)},
        {"protocol",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text) {
                 return;
             }
             if (*text == "http1") {
                 out.protocol = upstream_protocol::http1;
             } else if (*text == "h2c") {
                 out.protocol = upstream_protocol::h2c;
             } else if (*text == "h2") {
                 out.protocol = upstream_protocol::h2;
             } else {
                 r_.error(v, k, "expected http1, h2c or h2, got \"" + *text + "\"");
             }
         }},
    };
    r_.visit(n, key, fields);
}

void loader::clerk(const YAML::Node& n, const std::string& key, clerk_config& out) {
    // Values that end up in request headers to Clerk must not carry CR/LF.
    const auto header_value = [this](std::string& target) {
        return [this, &target](const YAML::Node& v, const std::string& k) {
            auto text = r_.string(v, k);
            if (!text) {
                return;
            }
            if (has_control_char(*text) || text->find(' ') != std::string::npos) {
                r_.error(v, k, "must not contain spaces or control characters");
                return;
            }
            target = std::move(*text);
        };
    };
    const field fields[] = {
        {"api_url",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text) {
                 return;
             }
             if (auto problem = parse_api_url(*text, out); !problem.empty()) {
                 r_.error(v, k, problem);
             }
         }},
        {"api_version",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text) {
                 return;
             }
             if (text->empty() || has_control_char(*text)) {
                 r_.error(v, k, "must be a non-empty version such as \"2026-05-12\"");
                 return;
             }
             out.api_version = std::move(*text);
         }},
        {"ca_file", to_ca_file(out.ca_file)},
        {"machine_secret_key", header_value(out.machine_secret_key)},
        {"secret_key", header_value(out.secret_key)},
        {"timeout", to_duration(out.timeout, false)},
        {"retries", to_integer(out.retries, 0, 10)},
        {"jwt_key",
         [this, &out](const YAML::Node& v, const std::string& k) { jwt_key(v, k, out.jwt_key); }},
    };
    r_.visit(n, key, fields);
}

void loader::jwt_key(const YAML::Node& n, const std::string& key, std::string& out) {
    auto text = r_.string(n, key);
    if (!text) {
        return;
    }
    // A value starting with '/' names a file holding the PEM (e.g. a mounted Secret); PEM text
    // itself always starts with "-----BEGIN".
    if (!text->empty() && text->front() == '/') {
        if (auto problem = file_problem(*text); !problem.empty()) {
            r_.error(n, key, problem);
            return;
        }
        std::ifstream in(*text, std::ios::binary);
        std::ostringstream pem;
        pem << in.rdbuf();
        *text = pem.str();
    }
    if (!text->empty() && text->find("-----BEGIN PUBLIC KEY-----") == std::string::npos) {
        r_.error(n, key,
                 "must be a PEM public key (\"-----BEGIN PUBLIC KEY-----\") or the path of a file "
                 "holding one");
        return;
    }
    out = std::move(*text);
}

}  // namespace clerk::config
