// The proxy's own settings: cache, admin, limits, shutdown and log (see loader.hpp).
#include "config/loader.hpp"
#include "config/values.hpp"

#include <cstdint>
#include <string_view>
#include <utility>

namespace clerk::config {

void loader::cache(const YAML::Node& n, const std::string& key, cache_config& out) {
    const field fields[] = {
        {"max_entries", to_integer(out.max_entries, 1, 1'000'000'000)},
        {"ttl", to_duration(out.ttl, true)},
        {"negative_ttl", to_duration(out.negative_ttl, true)},
        {"stale_if_error", to_duration(out.stale_if_error, true)},
        {"max_miss_rate", to_integer(out.max_miss_rate, 0, 1'000'000)},
        {"shared",
         [&](const YAML::Node& v, const std::string& k) { shared_cache(v, k, out.shared); }},
    };
    r_.visit(n, key, fields);
}

void loader::admin(const YAML::Node& n, const std::string& key, admin_config& out) {
    const field fields[] = {
        {"listen",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text) {
                 return;
             }
             if (text->empty()) {
                 out.listen.reset();  // "" disables the admin listener
                 return;
             }
             std::string problem;
             if (auto addr = parse_listen_address(*text, problem)) {
                 out.listen = std::move(*addr);
             } else {
                 r_.error(v, k, problem);
             }
         }},
    };
    r_.visit(n, key, fields);
}

void loader::limits(const YAML::Node& n, const std::string& key, limits_config& out) {
    const field fields[] = {
        {"max_header_bytes", to_integer(out.max_header_bytes, 1024, 16u << 20)},
        {"max_body_bytes", to_integer(out.max_body_bytes, 0, UINT64_MAX)},
        {"header_timeout", to_duration(out.header_timeout, false)},
        {"idle_timeout", to_duration(out.idle_timeout, false)},
        {"max_connections", to_integer(out.max_connections, 1, 10'000'000)},
        {"max_concurrent_streams", to_integer(out.max_concurrent_streams, 1, 1'000'000)},
        {"min_body_rate", to_integer(out.min_body_rate, 0, 1'000'000'000)},
        {"tunnel_idle_timeout", to_duration(out.tunnel_idle_timeout, false)},
        {"tunnel_max_lifetime", to_duration(out.tunnel_max_lifetime, true)},
    };
    r_.visit(n, key, fields);
}

void loader::shutdown(const YAML::Node& n, const std::string& key, shutdown_config& out) {
    const field fields[] = {{"drain_timeout", to_duration(out.drain_timeout, true)}};
    r_.visit(n, key, fields);
}

void loader::log(const YAML::Node& n, const std::string& key, log_config& out) {
    const field fields[] = {
        {"level",
         [this, &out](const YAML::Node& v, const std::string& k) {
             static constexpr std::pair<std::string_view, log_level> levels[] = {
                 {"trace", log_level::trace},
                 {"debug", log_level::debug},
                 {"info", log_level::info},
                 {"warn", log_level::warn},
                 {"error", log_level::error}};
             auto text = r_.string(v, k);
             if (!text) {
                 return;
             }
             for (const auto& [name, level] : levels) {
                 if (*text == name) {
                     out.level = level;
                     return;
                 }
             }
             r_.error(v, k, "expected trace, debug, info, warn or error, got \"" + *text + "\"");
         }},
        {"format",
         [this, &out](const YAML::Node& v, const std::string& k) {
             auto text = r_.string(v, k);
             if (!text) {
                 return;
             }
             if (*text == "json") {
                 out.format = log_format::json;
             } else if (*text == "text") {
                 out.format = log_format::text;
             } else {
                 r_.error(v, k, "expected json or text, got \"" + *text + "\"");
             }
         }},
        {"access_log", to_bool(out.access_log)},
    };
    r_.visit(n, key, fields);
}

}  // namespace clerk::config
