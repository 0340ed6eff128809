// libFuzzer target: a whole downstream connection's bytes through the steps proxy/http/session.cpp
// and proxy/upstream/relay.cpp run, without sockets (issue #7).
//
// Input: the raw bytes a client sends (one or more pipelined HTTP/1.1 requests). For each
// request: Beast's request_parser (header_limit = max_header_bytes, fed in small reads like a
// socket) -> check_request_framing -> core::normalize_target -> core::pre_authenticate over a
// fixed route table -> a fake authenticator whose outcome is read from the token's text
// ("invalid", "down", "noid" pick a failure; "admin"/"write" add scopes, "ops" picks the
// subject) -> core::post_authenticate -> rewrite_request_headers -> the body (chunked with
// trailers, or Content-Length) read the way relay.cpp does. The input's size picks a few config
// switches (forward_authorization, preserve_host, accepts_token: any, the read size).
//
// Invariants: a request is forwarded only if its framing passed, its path normalized, and its
// route is auth: none or a verified identity passed the route policy; the framing agrees with
// Beast's view of the body; a normalized path holds no "/../", "/./", "//", '\', NUL or encoded
// '/', '\' or NUL; the rewritten head holds exactly the injected identity headers (no
// client-supplied one, whatever its case), no hop-by-hop header nor one named in Connection
// (except the ones the proxy sets itself), no Content-Length or Transfer-Encoding, and no
// Authorization unless forward_authorization.
#include "core/header_rules.hpp"
#include "core/identity.hpp"
#include "core/path_normalizer.hpp"
#include "core/problem.hpp"
#include "core/request_decision.hpp"
#include "fuzz/fuzz_util.hpp"
#include "proxy/http/forward_auth.hpp"
#include "proxy/http/message_rules.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace core = clerk::core;
namespace proxy = clerk::proxy;
namespace http = boost::beast::http;
using boost::system::error_code;
using clerk::fuzz::check;

constexpr std::size_t max_header_bytes = 2048;  // small, so an oversized head is a small seed
constexpr std::size_t max_requests = 4;         // pipelined requests per input
constexpr std::size_t body_chunk_bytes = 64;    // relay.cpp reads bodies in bounded chunks

std::vector<core::route> make_table() {
    std::vector<core::route> t;
    core::route health = core::make_route("/healthz");
    health.methods = {"GET"};
    health.auth = core::auth_mode::none;
    t.push_back(std::move(health));
    core::route open = core::make_route("/public/*");
    open.auth = core::auth_mode::none;
    t.push_back(std::move(open));
    core::route admin = core::make_route("/admin/*");
    admin.require_scopes = {"mch_admin"};
    t.push_back(std::move(admin));
    core::route ops = core::make_route("/ops/*");
    ops.require_scopes = {"mch_write"};
    ops.allow_subjects = {"mch_ops"};
    t.push_back(std::move(ops));
    return t;  // anything else: no rule, auth required, no policy
}

const std::vector<core::route>& table() {
    static const std::vector<core::route> t = make_table();
    return t;
}

const core::header_rules& rules() {
    static const core::header_rules r = [] {
        core::identity_header_names n;  // the docs/reference.md §3 defaults
        n.strip_prefixes = {"X-Clerk-", "X-Internal-"};
        n.claims_to_headers = {{"tenant", "X-Tenant-Id"}};
        return core::header_rules(std::move(n));
    }();
    return r;
}

bool iequals(std::string_view a, std::string_view b) {
    return boost::beast::iequals(a, b);
}

bool istarts_with(std::string_view s, std::string_view p) {
    return s.size() >= p.size() && iequals(s.substr(0, p.size()), p);
}

bool contains(std::string_view s, std::string_view what) {
    return s.find(what) != std::string_view::npos;
}

// Reference lists, written out here rather than read back from the rules object. Identity names
// compare with '_' equal to '-' (X_Clerk_Subject is X-Clerk-Subject to a CGI-style upstream).
bool is_identity_name(std::string_view raw) {
    std::string dashed(raw);
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    const std::string_view name = dashed;
    for (const std::string_view n :
         {"X-Clerk-Subject", "X-Clerk-Machine-Id", "X-Clerk-Token-Id", "X-Clerk-Token-Type",
          "X-Clerk-Scopes", "X-Clerk-Claims", "X-Tenant-Id"}) {
        if (iequals(name, n)) {
            return true;
        }
    }
    return istarts_with(name, "x-clerk-") || istarts_with(name, "x-internal-");
}

bool is_hop_by_hop_name(std::string_view name) {
    for (const std::string_view n : {"connection", "keep-alive", "proxy-connection", "te",
                                     "trailer", "transfer-encoding", "upgrade"}) {
        if (iequals(name, n)) {
            return true;
        }
    }
    return false;
}

/// The headers rewrite_request_headers sets itself, whatever the client sent.
bool is_proxy_set(std::string_view name) {
    for (const std::string_view n :
         {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"}) {
        if (iequals(name, n)) {
            return true;
        }
    }
    return false;
}

/// What the authenticator answers (proxy/auth/authenticator.hpp's outcome, reduced to what the
/// session reads): a decision and, when allowed, usually an identity.
struct fake_outcome {
    core::auth_decision decision;
    std::shared_ptr<const core::identity> id;
};

fake_outcome fake_authenticate(std::string_view token, const core::token_class& cls) {
    if (contains(token, "invalid")) {
        return {{core::decision_kind::invalid_token, "not_found"}, nullptr};
    }
    if (contains(token, "down")) {
        return {{core::decision_kind::auth_unavailable, "clerk_unreachable"}, nullptr};
    }
    if (contains(token, "noid")) {
        return {{}, nullptr};  // a broken authenticator: allowed without identity
    }
    auto id = std::make_shared<core::identity>();
    id->type = cls.type;
    id->format = cls.format;
    id->token_id = "mt_fuzz";
    core::principal who;
    who.subject = contains(token, "ops") ? "mch_ops" : "mch_svc";
    if (contains(token, "admin")) {
        who.scopes.emplace_back("mch_admin");
    }
    if (contains(token, "write")) {
        who.scopes.emplace_back("mch_write");
    }
    who.claims = {{"tenant", "t1"}};
    who.claims_compact = core::compact_ascii_json(who.claims);
    id->who = std::make_shared<const core::principal>(std::move(who));
    return {{}, std::move(id)};
}

bool has_all(const std::vector<std::string>& have, const std::vector<std::string>& need) {
    return std::all_of(need.begin(), need.end(), [&](const std::string& s) {
        return std::find(have.begin(), have.end(), s) != have.end();
    });
}

/// The client's bytes as a socket would deliver them: at most `step` new bytes per read.
struct wire {
    std::string_view data;
    std::size_t step = 1;
    std::size_t pos = 0;    // consumed by the parser
    std::size_t avail = 0;  // received so far

    bool receive() {
        if (avail == data.size()) {
            return false;  // EOF
        }
        avail = std::min(data.size(), avail + step);
        return true;
    }

    /// One parser.put over what was received and not consumed; need_more reads more.
    template <class Parser>
    error_code put(Parser& p) {
        for (;;) {
            error_code ec;
            if (avail > pos) {
                pos += p.put(boost::asio::const_buffer(data.data() + pos, avail - pos), ec);
            } else {
                ec = http::error::need_more;
            }
            if (ec != http::error::need_more) {
                return ec;
            }
            if (!receive()) {
                return http::error::end_of_stream;
            }
        }
    }
};

void check_path(const core::normalized_target& t) {
    const std::string& p = t.path;
    check(!p.empty() && p.front() == '/', "a normalized path starts with '/'");
    for (const std::string_view bad : {"/../", "/./", "//", "\\"}) {
        check(!contains(p, bad), "no dot segment, empty segment or backslash in the path");
    }
    check(!(p.size() >= 3 && p.ends_with("/..")) && !(p.size() >= 2 && p.ends_with("/.")),
          "no trailing dot segment");
    for (const char c : p) {
        const auto u = static_cast<unsigned char>(c);
        check(u >= 0x20 && u != 0x7f, "no NUL or control character in the path");
    }
    for (std::size_t i = p.find('%'); i != std::string::npos; i = p.find('%', i + 1)) {
        const std::string_view esc = std::string_view(p).substr(i, 3);
        check(!iequals(esc, "%2f") && !iequals(esc, "%5c") && esc != "%00",
              "no encoded '/', '\\' or NUL in the path");
    }
    check(core::normalize_target(p).path == p, "a normalized path is a fixed point");
}

/// The rewritten upstream head against the reference rules of docs/reference.md §5.
void check_rewrite(const proxy::header_fields& in, const proxy::header_fields& out,
                   const core::identity* id, bool forward_authorization) {
    std::vector<std::string_view> conn_values;
    for (auto [it, end] = in.equal_range(http::field::connection); it != end; ++it) {
        conn_values.push_back(it->value());
    }
    const std::vector<std::string> conn = core::connection_tokens(conn_values);
    const auto injected = id != nullptr ? rules().identity_headers(*id)
                                        : std::vector<std::pair<std::string, std::string>>{};

    std::vector<std::pair<std::string, std::string>> identity_out;
    for (const auto& f : out) {
        const std::string_view name = f.name_string();
        if (is_identity_name(name)) {
            identity_out.emplace_back(std::string(name), std::string(f.value()));
            continue;  // checked below as a whole
        }
        check(!is_hop_by_hop_name(name), "no hop-by-hop header is forwarded");
        check(!iequals(name, "content-length"), "Content-Length is not copied");
        const bool named = std::any_of(conn.begin(), conn.end(),
                                       [name](const std::string& t) { return iequals(name, t); });
        check(!named || is_proxy_set(name), "a header named in Connection is not forwarded");
        if (!forward_authorization) {
            check(!iequals(name, "authorization"), "Authorization is not forwarded");
        }
    }
    check(identity_out == injected,
          "the identity headers are exactly the injected ones, with the injected values");
    check(out.count(http::field::host) == 1, "exactly one Host upstream");
    check(out.count("X-Request-Id") == 1, "exactly one X-Request-Id upstream");
}

struct options {
    bool forward_authorization = false;
    bool preserve_host = true;
    core::token_acceptance accepts;
};

/// One request of the connection; false when the connection cannot go on.
void check_forward_auth(const http::request<http::buffer_body, proxy::header_fields>& req,
                        const core::identity* id);

bool serve_one(wire& w, const options& opt) {
    proxy::request_parser<http::buffer_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(max_header_bytes));
    parser.body_limit(boost::none);  // max_body_bytes is the session's job (0 = unlimited here)
    parser.eager(false);

    // --- phase: read the head
    error_code ec;
    while (!parser.is_header_done()) {
        ec = w.put(parser);
        if (ec) {
            return false;  // 431, 400 or EOF: the connection closes
        }
    }
    const auto& req = parser.get();
    bool keep_alive = req.keep_alive();

    // --- phase: framing (smuggling)
    proxy::request_framing framing;
    const core::auth_decision framing_decision =
        proxy::check_request_framing(req, req.version(), 0, framing);
    if (!framing_decision.allowed()) {
        check(framing_decision.kind == core::decision_kind::bad_request,
              "a framing refusal is a 400 (no body limit here)");
        return false;  // the body's extent is unknown: refused and closed
    }
    check(framing.chunked == parser.chunked(), "framing and Beast agree on chunked");
    if (framing.content_length) {
        check(parser.content_length() && *parser.content_length() == *framing.content_length,
              "framing and Beast agree on Content-Length");
    } else if (!framing.chunked) {
        check(!parser.content_length() || *parser.content_length() == 0,
              "no framing header: no body");
    }

    // --- phase: path
    const core::normalized_target target = core::normalize_target(req.target());
    if (target.status != core::path_status::ok) {
        return !framing.has_body() && keep_alive;  // 400; a pending body closes the connection
    }
    check_path(target);

    // --- phase: ';' parameters that would route differently the Servlet way (session.cpp: 400
    // ambiguous_path, before authorize())
    if (core::path_parameters_ambiguous(table(), req.method_string(), target.path)) {
        check(target.path.find(';') != std::string::npos, "only a path with ';' is ambiguous");
        return !framing.has_body() && keep_alive;
    }

    // --- phase: route, token, verification, policy (session.cpp authorize())
    std::vector<std::string_view> authorization;
    for (auto [it, end] = req.equal_range(http::field::authorization); it != end; ++it) {
        authorization.push_back(it->value());
    }
    const std::string method(req.method_string());
    const core::pre_auth pre =
        core::pre_authenticate(table(), opt.accepts, method, target.path, authorization);
    std::shared_ptr<const core::identity> id;
    core::auth_decision d = pre.decision;
    if (pre.needs_verification) {
        check(!d.allowed(), "an unverified request is refused (fail closed)");
        const fake_outcome r = fake_authenticate(pre.token, pre.cls);
        d = r.decision;
        if (d.allowed() && !r.id) {
            d = {core::decision_kind::auth_unavailable, "no_identity"};  // fail closed
        }
        if (d.allowed()) {
            id = r.id;
            d = core::post_authenticate(pre.matched, *r.id);
        }
    }

    // Reference: who may pass, computed without request_decision.cpp.
    const core::route* rule = core::match_route(table(), method, target.path);
    const bool open_rule = rule != nullptr && rule->auth == core::auth_mode::none;
    const bool subject_ok =
        rule == nullptr || rule->allow_subjects.empty() ||
        (id != nullptr && std::find(rule->allow_subjects.begin(), rule->allow_subjects.end(),
                                    id->who->subject) != rule->allow_subjects.end());
    const bool policy_ok = id != nullptr && subject_ok &&
                           (rule == nullptr || has_all(id->who->scopes, rule->require_scopes));
    check(d.allowed() == (open_rule || policy_ok),
          "forwarded iff auth: none, or a verified identity that passes the route policy");
    if (!d.allowed()) {
        check(core::problem_for(d.kind).status >= 400, "a refusal is an error status");
        return !framing.has_body() && keep_alive;
    }

    // --- forward-auth mode (session.cpp with mode: forward_auth): the original request the
    // check describes goes through the same path rules, and the positive answer is a
    // well-formed head carrying the identity (never a client's copy: nothing is echoed).
    check_forward_auth(req, id.get());

    // --- phase: the upstream head (relay.cpp build_request_head())
    proxy::forward_params fp;
    fp.rules = &rules();
    fp.id = id.get();
    fp.forward_authorization = opt.forward_authorization;
    fp.preserve_host = opt.preserve_host;
    fp.upstream_host = "upstream.internal:3000";
    fp.peer_ip = "192.0.2.7";
    const std::string request_id = proxy::request_id_for(req);
    fp.request_id = request_id;
    http::request<http::buffer_body, proxy::header_fields> up;
    proxy::rewrite_request_headers(req, up, fp);
    check_rewrite(req, up, id.get(), opt.forward_authorization);

    // --- phase: the body, in bounded chunks (relay.cpp send_body()); trailers are parsed here
    // but never forwarded (the upstream head is already built).
    std::array<char, body_chunk_bytes> chunk{};
    std::uint64_t total = 0;
    parser.eager(true);
    while (!parser.is_done()) {
        parser.get().body().data = chunk.data();
        parser.get().body().size = chunk.size();
        ec = w.put(parser);
        if (ec == http::error::need_buffer) {
            ec = {};
        }
        if (ec) {
            return false;  // malformed chunk (400) or the client went away
        }
        total += chunk.size() - parser.get().body().size;
    }
    if (framing.content_length) {
        check(total == *framing.content_length, "a Content-Length body is exactly that long");
    }
    return keep_alive;
}

void check_forward_auth(const http::request<http::buffer_body, proxy::header_fields>& req,
                        const core::identity* id) {
    const auto original = proxy::original_request_of(req, req.method_string(), req.target());
    if (original.reason.empty()) {
        check(!original.method.empty() && !original.target.empty(),
              "a told original request has a method and a target");
        const auto t = core::normalize_target(original.target);
        if (t.status == core::path_status::ok) {
            check_path(t);
        }
    }
    std::string head;
    std::string scratch;
    proxy::append_check_allowed(head, 11, (req.version() & 1) != 0, "rid", rules(), id, scratch);
    http::response_parser<http::empty_body> p;
    boost::system::error_code ec;
    p.put(boost::asio::buffer(head), ec);
    check(!ec && p.is_header_done(), "the check answer is a well-formed head");
    const auto& res = p.get();
    check(res.result_int() == 200 && res[http::field::content_length] == "0",
          "a 200 with an empty body");
    const auto& names = rules().names();
    for (const auto* name : {&names.subject, &names.token_id, &names.token_type, &names.scopes}) {
        check(res.count(*name) == 1, "every identity header exactly once");
    }
    check(res[names.subject] == (id != nullptr ? std::string_view(id->who->subject) : ""),
          "the subject is the verified one or empty");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static constexpr std::array<std::size_t, 4> read_sizes{1 << 20, 1, 7, 100};
    options opt;
    opt.forward_authorization = (size & 1) != 0;
    opt.preserve_host = (size & 2) == 0;
    opt.accepts.any = (size & 4) != 0;
    wire w;
    w.data = clerk::fuzz::as_view(data, size);
    w.step = read_sizes[(size >> 3) % read_sizes.size()];
    w.receive();
    for (std::size_t i = 0; i < max_requests; ++i) {
        if (!serve_one(w, opt)) {
            break;
        }
    }
    return 0;
}
