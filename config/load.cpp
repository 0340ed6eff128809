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
        {"mode",
         [this, &cfg](const YAML::Node& n, const std::string& k) {
             auto v = r_.string(n, k);
             if (!v) {
                 return;
             }
             if (*v == "proxy") {
                 cfg.mode = proxy_mode::proxy;
             } else if (*v == "forward_auth") {
                 cfg.mode = proxy_mode::forward_auth;
             } else {
                 r_.error(n, k, "expected proxy or forward_auth, got \"" + *v + "\"");
             }
         }},
        {"listen", to_listen(cfg.listen)},
        {"tls", [this, &cfg](const YAML::Node& n, const std::string& k) { tls(n, k, cfg.tls); }},
        {"upstream",
         [this, &cfg](const YAML::Node& n, const std::string& k) { upstream(n, k, cfg.upstream); }},
        {"clerk",
         [this, &cfg](const YAML::Node& n, const std::string& k) { clerk(n, k, cfg.clerk); }},
        {"auth", [this, &cfg](const YAML::Node& n, const std::string& k) { auth(n, k, cfg.auth); }},
        {"cache",
         [this, &cfg](const YAML::Node& n, const std::string& k) {
             const field f[] = {
                 {"max_entries", to_integer(cfg.cache.max_entries, 1, 1'000'000'000)},
                 {"ttl", to_duration(cfg.cache.ttl, true)},
                 {"negative_ttl", to_duration(cfg.cache.negative_ttl, true)},
                 {"stale_if_error", to_duration(cfg.cache.stale_if_error, true)},
                 {"max_miss_rate", to_integer(cfg.cache.max_miss_rate, 0, 1'000'000)},
                 {"shared",
                  [this, &cfg](const YAML::Node& sn, const std::string& sk) {
                      shared_cache(sn, sk, cfg.cache.shared);
                  }},
             };
             r_.visit(n, k, f);
         }},
        {"headers",
         [this, &cfg](const YAML::Node& n, const std::string& k) { headers(n, k, cfg.headers); }},
        {"routes",
         [this, &cfg](const YAML::Node& n, const std::string& k) { routes(n, k, cfg.routes); }},
        {"admin",
         [this, &cfg](const YAML::Node& n, const std::string& k) {
             const field f[] = {
                 {"listen",
                  [this, &cfg](const YAML::Node& v, const std::string& key) {
                      auto text = r_.string(v, key);
                      if (!text) {
                          return;
                      }
                      if (text->empty()) {
                          cfg.admin.listen.reset();  // "" disables the admin listener
                          return;
                      }
                      std::string problem;
                      if (auto addr = parse_listen_address(*text, problem)) {
                          cfg.admin.listen = std::move(*addr);
                      } else {
                          r_.error(v, key, problem);
                      }
                  }},
             };
             r_.visit(n, k, f);
         }},
        {"limits",
         [this, &cfg](const YAML::Node& n, const std::string& k) {
             limits_config& l = cfg.limits;
             const field f[] = {
                 {"max_header_bytes", to_integer(l.max_header_bytes, 1024, 16u << 20)},
                 {"max_body_bytes", to_integer(l.max_body_bytes, 0, UINT64_MAX)},
                 {"header_timeout", to_duration(l.header_timeout, false)},
                 {"idle_timeout", to_duration(l.idle_timeout, false)},
                 {"max_connections", to_integer(l.max_connections, 1, 10'000'000)},
                 {"max_concurrent_streams", to_integer(l.max_concurrent_streams, 1, 1'000'000)},
                 {"min_body_rate", to_integer(l.min_body_rate, 0, 1'000'000'000)},
                 {"tunnel_idle_timeout", to_duration(l.tunnel_idle_timeout, false)},
                 {"tunnel_max_lifetime", to_duration(l.tunnel_max_lifetime, true)},
             };
             r_.visit(n, k, f);
         }},
        {"shutdown",
         [this, &cfg](const YAML::Node& n, const std::string& k) {
             const field f[] = {{"drain_timeout", to_duration(cfg.shutdown.drain_timeout, true)}};
             r_.visit(n, k, f);
         }},
        {"log",
         [this, &cfg](const YAML::Node& n, const std::string& k) {
             const field f[] = {
                 {"level",
                  [this, &cfg](const YAML::Node& v, const std::string& key) {
                      static constexpr std::pair<std::string_view, log_level> levels[] = {
                          {"trace", log_level::trace},
                          {"debug", log_level::debug},
                          {"info", log_level::info},
                          {"warn", log_level::warn},
                          {"error", log_level::error}};
                      auto text = r_.string(v, key);
                      if (!text) {
                          return;
                      }
                      for (const auto& [name, level] : levels) {
                          if (*text == name) {
                              cfg.log.level = level;
                              return;
                          }
                      }
                      r_.error(v, key,
                               "expected trace, debug, info, warn or error, got \"" + *text + "\"");
                  }},
                 {"format",
                  [this, &cfg](const YAML::Node& v, const std::string& key) {
                      auto text = r_.string(v, key);
                      if (!text) {
                          return;
                      }
                      if (*text == "json") {
                          cfg.log.format = log_format::json;
                      } else if (*text == "text") {
                          cfg.log.format = log_format::text;
                      } else {
                          r_.error(v, key, "expected json or text, got \"" + *text + "\"");
                      }
                  }},
                 {"access_log", to_bool(cfg.log.access_log)},
             };
             r_.visit(n, k, f);
         }},
        {"threads", to_integer(cfg.threads, 0, 1024)},
        {"http2", to_bool(cfg.http2)},
    };
    return r_.visit(root, "", fields);
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

void loader::cross_checks(config& cfg) {
    // tls: both files or neither.
    const bool cert = !cfg.tls.cert_file.empty() || r_.failed("tls.cert_file");
    const bool key = !cfg.tls.key_file.empty() || r_.failed("tls.key_file");
    if (cert && !key) {
        r_.error(r_.line_for("tls", root_line_), "tls.key_file", "required with tls.cert_file");
    } else if (key && !cert) {
        r_.error(r_.line_for("tls", root_line_), "tls.cert_file", "required with tls.key_file");
    }

    if (cfg.mode == proxy_mode::proxy && cfg.upstream.url.empty() && !r_.failed("upstream.url")) {
        r_.error(r_.line_for("upstream.url", r_.line_for("upstream", root_line_)), "upstream.url",
                 "required in proxy mode");
    }
    if (const int at = r_.line_for("upstream", -1);
        cfg.mode == proxy_mode::forward_auth && at != -1) {
        // A gateway sends the traffic on; an upstream here would be silently ignored.
        r_.error(at, "upstream",
                 "not allowed in forward_auth mode (the gateway forwards the request; remove "
                 "the upstream section or use mode: proxy)");
    }
    // h2 is negotiated by ALPN inside TLS; h2c is HTTP/2 in the clear (TCP or unix socket).
    if (const int at = r_.line_for("upstream.protocol", -1); at != -1) {
        if (cfg.upstream.protocol == upstream_protocol::h2 &&
            cfg.upstream.scheme != upstream_scheme::https && !r_.failed("upstream.url")) {
            r_.error(at, "upstream.protocol",
                     "h2 needs an https:// upstream.url (use h2c for http://)");
        } else if (cfg.upstream.protocol == upstream_protocol::h2c &&
                   cfg.upstream.scheme == upstream_scheme::https) {
            r_.error(at, "upstream.protocol",
                     "h2c is cleartext: use h2 with an https:// upstream.url");
        }
    }
    if (cfg.upstream.scheme == upstream_scheme::https && !cfg.upstream.tls_verify) {
        cfg.warnings.push_back(
            "upstream.tls_verify is false: the upstream's certificate is not verified");
    }

    if (cfg.clerk.machine_secret_key.empty() && cfg.clerk.secret_key.empty() &&
        !r_.failed("clerk.machine_secret_key") && !r_.failed("clerk.secret_key")) {
        r_.error(r_.line_for("clerk", root_line_), "clerk.machine_secret_key",
                 "one of clerk.machine_secret_key or clerk.secret_key must be set");
    }
    // API keys and opaque OAuth tokens are verified with the instance secret key only, and
    // session and OAuth JWTs need its JWKS (docs/reference.md §12).
    const auto& accepts = cfg.auth.accepts;
    if ((accepts.any || accepts.accepts(core::token_type::api_key) ||
         accepts.accepts(core::token_type::oauth_token)) &&
        cfg.clerk.secret_key.empty() && !r_.failed("clerk.secret_key") &&
        !r_.failed("auth.accepts_token")) {
        r_.error(r_.line_for("clerk", root_line_), "clerk.secret_key",
                 "required when auth.accepts_token includes api_key, oauth_token or any (Clerk "
                 "verifies them with the instance secret key)");
    }
    const bool jwt_keys = !cfg.clerk.jwt_key.empty() || !cfg.clerk.secret_key.empty();
    if (!accepts.any && accepts.accepts(core::token_type::session_token) && !jwt_keys &&
        !r_.failed("clerk.secret_key") && !r_.failed("clerk.jwt_key") &&
        !r_.failed("auth.accepts_token")) {
        r_.error(r_.line_for("clerk", root_line_), "clerk.jwt_key",
                 "clerk.jwt_key or clerk.secret_key is required when auth.accepts_token includes "
                 "session_token (session tokens are verified with the instance's signing key)");
    }
    if (!cfg.clerk.api_url_is_https && !is_loopback_host(cfg.clerk.api_host)) {
        cfg.warnings.push_back("clerk.api_url uses http:// to non-loopback host \"" +
                               cfg.clerk.api_host +
                               "\": tokens and keys would cross the network unencrypted");
    }

    // Recipient scoping (docs/reference.md §12): a JWT is verified locally, so nobody checks that
    // it was minted for this service unless auth.audience says who this service is.
    if (cfg.auth.accepts.accepts(core::token_type::m2m_token) && jwt_keys &&
        cfg.auth.audience.empty() && !r_.failed("auth.audience")) {
        cfg.warnings.push_back(
            "auth.audience is not set: any machine of the Clerk instance can call this service "
            "with an M2M JWT, scoped to it or not; set auth.audience to this service's machine "
            "id, e.g. audience: [\"${CLERK_MACHINE_ID}\"]");
    }
    // OAuth access tokens in JWT format are verified locally too: their `aud` is the only
    // recipient check, and only when auth.audience is set.
    if (cfg.auth.accepts.accepts(core::token_type::oauth_token) && jwt_keys &&
        cfg.auth.audience.empty() && !r_.failed("auth.audience")) {
        cfg.warnings.push_back(
            "auth.audience is not set: an OAuth access token in JWT format issued for any "
            "audience of the Clerk instance is accepted; set auth.audience to this service's "
            "identifier(s)");
    }
    if (cfg.auth.accepts.accepts(core::token_type::session_token) &&
        cfg.auth.authorized_parties.empty() && !r_.failed("auth.authorized_parties")) {
        cfg.warnings.push_back(
            "auth.authorized_parties is not set: a session token issued to any origin of the "
            "Clerk instance (its azp claim) is accepted; list this service's front-end origins, "
            "e.g. authorized_parties: [\"https://app.example.com\"]");
    }

    if (cfg.admin.listen && cfg.admin.listen->port != 0 &&
        cfg.admin.listen->port == cfg.listen.port && cfg.admin.listen->host == cfg.listen.host) {
        r_.error(r_.line_for("admin.listen", root_line_), "admin.listen",
                 "must differ from listen (the admin endpoints never share the main listener)");
    }
    header_name_checks(cfg.headers);
}

}  // namespace clerk::config
