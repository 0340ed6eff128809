#include "tests/emulator/emulator_state.hpp"

#include <algorithm>

#include "tests/emulator/random_ids.hpp"

namespace clerk::emulator {

using nlohmann::json;

namespace {

json optional_ms(const std::optional<std::int64_t>& value) {
    return value ? json(*value) : json(nullptr);
}

std::optional<std::int64_t> ms_from_json(const json& value) {
    if (value.is_number_integer()) {
        return value.get<std::int64_t>();
    }
    return std::nullopt;
}

}  // namespace

json call_stats::to_json() const {
    return {{"verify_calls", verify}, {"create_calls", create}, {"revoke_calls", revoke},
            {"list_calls", list},     {"jwks_calls", jwks},     {"total_calls", total}};
}

emulator_state::emulator_state(std::string instance_secret_key)
    : instance_secret_key_(std::move(instance_secret_key)) {}

machine& emulator_state::create_machine(std::string name, std::vector<std::string> scoped,
                                        std::int64_t now_ms) {
    machine m;
    m.id = new_machine_id();
    m.name = std::move(name);
    m.secret_key = new_machine_secret();
    m.scoped_machines = std::move(scoped);
    m.created_at = now_ms;
    m.updated_at = now_ms;
    machines_.push_back(std::move(m));
    dirty = true;
    return machines_.back();
}

machine* emulator_state::find_machine(std::string_view id) {
    auto it = std::find_if(machines_.begin(), machines_.end(),
                           [&](const machine& m) { return m.id == id; });
    return it == machines_.end() ? nullptr : &*it;
}

machine* emulator_state::find_machine_by_key(std::string_view secret_key) {
    auto it = std::find_if(machines_.begin(), machines_.end(),
                           [&](const machine& m) { return m.secret_key == secret_key; });
    return it == machines_.end() ? nullptr : &*it;
}

machine* emulator_state::find_machine_by_name(std::string_view name) {
    auto it = std::find_if(machines_.begin(), machines_.end(),
                           [&](const machine& m) { return m.name == name; });
    return it == machines_.end() ? nullptr : &*it;
}

bool emulator_state::add_scope(std::string_view from, std::string_view to, std::int64_t now_ms) {
    machine* src = find_machine(from);
    if (src == nullptr || find_machine(to) == nullptr) {
        return false;
    }
    auto& scoped = src->scoped_machines;
    if (std::find(scoped.begin(), scoped.end(), to) == scoped.end()) {
        scoped.emplace_back(to);
        src->updated_at = now_ms;
        dirty = true;
    }
    return true;
}

bool emulator_state::remove_scope(std::string_view from, std::string_view to, std::int64_t now_ms) {
    machine* src = find_machine(from);
    if (src == nullptr) {
        return false;
    }
    auto& scoped = src->scoped_machines;
    auto it = std::find(scoped.begin(), scoped.end(), to);
    if (it == scoped.end()) {
        return false;
    }
    scoped.erase(it);
    src->updated_at = now_ms;
    dirty = true;
    return true;
}

m2m_token& emulator_state::add_token(m2m_token token) {
    token.seq = next_seq_++;
    secret_index_[token.secret] = token.id;
    auto [it, inserted] = tokens_.insert_or_assign(token.id, std::move(token));
    dirty = true;
    return it->second;
}

m2m_token* emulator_state::find_token(std::string_view id) {
    auto it = tokens_.find(id);
    return it == tokens_.end() ? nullptr : &it->second;
}

m2m_token* emulator_state::find_token_by_secret(std::string_view secret) {
    auto it = secret_index_.find(std::string(secret));
    return it == secret_index_.end() ? nullptr : find_token(it->second);
}

std::vector<const m2m_token*> emulator_state::tokens_of(std::string_view subject) const {
    std::vector<const m2m_token*> out;
    for (const auto& [id, token] : tokens_) {
        if (token.subject == subject) {
            out.push_back(&token);
        }
    }
    std::sort(out.begin(), out.end(),
              [](const m2m_token* a, const m2m_token* b) { return a->seq > b->seq; });
    return out;
}

json emulator_state::to_json() const {
    json machines = json::array();
    for (const auto& m : machines_) {
        json entry = machine_json(m, true);
        machines.push_back(std::move(entry));
    }
    json tokens = json::array();
    for (const auto& [id, token] : tokens_) {
        json entry = token_json(token, 0, true);
        entry["seq"] = token.seq;
        tokens.push_back(std::move(entry));
    }
    return {
        {"machines", std::move(machines)}, {"tokens", std::move(tokens)}, {"jwt_ids", jwt_ids_}};
}

bool emulator_state::load_json(const json& doc) {
    try {
        std::vector<machine> machines;
        for (const auto& m : doc.at("machines")) {
            machine out;
            out.id = m.at("id").get<std::string>();
            out.name = m.at("name").get<std::string>();
            out.secret_key = m.at("secret_key").get<std::string>();
            for (const auto& s : m.at("scoped_machines")) {
                out.scoped_machines.push_back(s.at("id").get<std::string>());
            }
            out.default_token_ttl = m.at("default_token_ttl").get<std::int64_t>();
            out.created_at = m.at("created_at").get<std::int64_t>();
            out.updated_at = m.at("updated_at").get<std::int64_t>();
            machines.push_back(std::move(out));
        }
        std::vector<m2m_token> tokens;
        for (const auto& t : doc.at("tokens")) {
            m2m_token out;
            out.id = t.at("id").get<std::string>();
            out.secret = t.at("token").get<std::string>();
            out.subject = t.at("subject").get<std::string>();
            out.claims = t.at("claims");
            out.scopes = t.at("scopes").get<std::vector<std::string>>();
            out.revoked = t.at("revoked").get<bool>();
            out.revocation_reason = t.at("revocation_reason");
            out.expiration = ms_from_json(t.at("expiration"));
            out.last_used_at = ms_from_json(t.at("last_used_at"));
            out.created_at = t.at("created_at").get<std::int64_t>();
            out.updated_at = t.at("updated_at").get<std::int64_t>();
            out.seq = t.at("seq").get<std::uint64_t>();
            tokens.push_back(std::move(out));
        }
        auto jwt_ids = doc.value("jwt_ids", std::set<std::string>{});

        machines_ = std::move(machines);
        tokens_.clear();
        secret_index_.clear();
        for (auto& t : tokens) {
            next_seq_ = std::max(next_seq_, t.seq + 1);
            secret_index_[t.secret] = t.id;
            tokens_.insert_or_assign(t.id, std::move(t));
        }
        jwt_ids_ = std::move(jwt_ids);
        return true;
    } catch (const json::exception&) {
        return false;
    }
}

json token_json(const m2m_token& token, std::int64_t now_ms, bool with_secret) {
    json out = {{"object", "machine_to_machine_token"},
                {"id", token.id},
                {"subject", token.subject},
                {"claims", token.claims},
                {"scopes", token.scopes},
                {"revoked", token.revoked},
                {"revocation_reason", token.revocation_reason},
                {"expired", token.expired_at(now_ms)},
                {"expiration", optional_ms(token.expiration)},
                {"last_used_at", optional_ms(token.last_used_at)},
                {"created_at", token.created_at},
                {"updated_at", token.updated_at}};
    if (with_secret) {
        out["token"] = token.secret;
    }
    return out;
}

json emulator_state::machine_json(const machine& m, bool with_secret) const {
    auto base = [](const machine& x) {
        return json{{"object", "machine"},
                    {"id", x.id},
                    {"name", x.name},
                    {"instance_id", "ins_emulator"},
                    {"created_at", x.created_at},
                    {"updated_at", x.updated_at},
                    {"default_token_ttl", x.default_token_ttl}};
    };
    json scoped = json::array();
    for (const auto& id : m.scoped_machines) {
        auto it = std::find_if(machines_.begin(), machines_.end(),
                               [&](const machine& other) { return other.id == id; });
        if (it != machines_.end()) {
            scoped.push_back(base(*it));  // nested machines carry no scopes
        }
    }
    json out = base(m);
    out["scoped_machines"] = std::move(scoped);
    if (with_secret) {
        out["secret_key"] = m.secret_key;
    }
    return out;
}

json error_json(std::string_view code, std::string_view message, std::string_view long_message) {
    return {
        {"errors", json::array({{{"message", message},
                                 {"long_message", long_message.empty() ? message : long_message},
                                 {"code", code}}})},
        {"clerk_trace_id", new_trace_id()}};
}

}  // namespace clerk::emulator
