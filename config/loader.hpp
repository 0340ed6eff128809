#pragma once
// The schema of docs/reference.md §3: walks a parsed YAML tree section by section into a config,
// collecting every problem. Split over load.cpp (top level, listener, upstream, Clerk),
// load_server.cpp (cache, admin, limits, shutdown, log), load_shared.cpp (cache.shared),
// load_http.cpp (auth, headers), load_routes.cpp (routes) and load_checks.cpp (the checks that
// span several keys). Internal to config/.
#include "config/config.hpp"
#include "config/values.hpp"
#include "config/yaml_reader.hpp"

#include <string>

namespace clerk::config {

/// One use per load. Thread safety: none.
class loader {
public:
    loader(std::string file, const env_lookup& env, std::vector<config_error>& errors)
        : r_(std::move(file), env, errors) {}

    /// Fills `cfg` from `root` (a mapping, or null for an empty file), then runs the checks
    /// that span several keys.
    void load(const YAML::Node& root, config& cfg);

private:
    using field = yaml_reader::field;
    using apply_fn = decltype(field::apply);

    // Field appliers: parse, check, assign on success.
    apply_fn to_string(std::string& out);
    apply_fn to_bool(bool& out);
    apply_fn to_duration(millis& out, bool allow_zero);
    template <class T>
    apply_fn to_integer(T& out, std::uint64_t min, std::uint64_t max) {
        return [this, &out, min, max](const YAML::Node& n, const std::string& k) {
            if (auto v = r_.integer(n, k, min, max)) {
                out = static_cast<T>(*v);
            }
        };
    }
    /// A path whose file passes `check` (default: exists, regular, readable).
    using file_check = std::string (*)(const std::string&);
    apply_fn to_file(std::string& out, file_check check = file_problem);
    apply_fn to_ca_file(std::string& out);  ///< to_file + a loadable CA bundle
    apply_fn to_listen(listen_address& out);
    /// A list of strings, duplicates folded; an empty entry is an error (`empty_problem`, at its
    /// line) and leaves `out` unchanged.
    apply_fn unique_nonempty_list(std::vector<std::string>& out, const char* empty_problem);

    // Sections (load.cpp).
    /// False when the document is not a mapping (then nothing else is checked).
    bool top_level(const YAML::Node& root, config& cfg);
    void mode(const YAML::Node& n, const std::string& key, proxy_mode& out);
    void tls(const YAML::Node& n, const std::string& key, tls_config& out);
    void upstream(const YAML::Node& n, const std::string& key, upstream_config& out);
    void clerk(const YAML::Node& n, const std::string& key, clerk_config& out);
    void jwt_key(const YAML::Node& n, const std::string& key, std::string& out);

    // Sections (load_server.cpp).
    void cache(const YAML::Node& n, const std::string& key, cache_config& out);
    void admin(const YAML::Node& n, const std::string& key, admin_config& out);
    void limits(const YAML::Node& n, const std::string& key, limits_config& out);
    void shutdown(const YAML::Node& n, const std::string& key, shutdown_config& out);
    void log(const YAML::Node& n, const std::string& key, log_config& out);

    // Sections (load_shared.cpp).
    void shared_cache(const YAML::Node& n, const std::string& key, shared_cache_config& out);

    // Sections (load_http.cpp).
    void auth(const YAML::Node& n, const std::string& key, auth_config& out);
    void headers(const YAML::Node& n, const std::string& key, core::identity_header_names& out);
    void claims_to_headers(const YAML::Node& n, const std::string& key,
                           core::identity_header_names& out);
    void header_name_checks(const core::identity_header_names& names);

    // Sections (load_routes.cpp).
    /// What one route rule's keys said, before the checks that span them (add_route).
    struct route_parts;
    void routes(const YAML::Node& n, const std::string& key, std::vector<core::route>& out);
    void route(const YAML::Node& n, const std::string& key, std::vector<core::route>& out);
    void route_path(const YAML::Node& n, const std::string& key, std::optional<std::string>& out);
    void route_methods(const YAML::Node& n, const std::string& key, std::vector<std::string>& out);
    void route_auth(const YAML::Node& n, const std::string& key, core::auth_mode& out);
    /// A list of non-empty strings without spaces or control characters (scopes, subject ids),
    /// appended to `out`; once the whole list is read, `present` says whether `out` holds any.
    /// The first bad entry is reported ("not a valid <what>") and ends the list.
    apply_fn word_list(std::vector<std::string>& out, bool& present, std::string_view what);
    /// Path required, no policy with auth: none; then appends the rule to `out`.
    void add_route(const std::string& key, int line, route_parts& parts,
                   std::vector<core::route>& out);

    // Cross-key checks (load_checks.cpp).
    void cross_checks(config& cfg);

    yaml_reader r_;
    int root_line_ = 1;  // for problems about keys missing from the file
};

}  // namespace clerk::config
