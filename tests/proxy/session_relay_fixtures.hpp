#pragma once
// The harness of tests/proxy/session_relay_test.cpp: one event loop running a real session (and
// relay) over in-memory streams (proxy/net/any_stream.hpp), a runtime whose upstream pool hands
// out in-memory connections to a scripted upstream, and a table authenticator.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <catch2/catch.hpp>
#include <deque>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "config/load.hpp"
#include "core/header_rules.hpp"
#include "proxy/auth/authenticator.hpp"
#include "proxy/http/connection_registry.hpp"
#include "proxy/http/session.hpp"
#include "proxy/metrics.hpp"
#include "proxy/net/any_stream.hpp"
#include "proxy/runtime.hpp"
#include "proxy/upstream/upstream_pool.hpp"
namespace session_relay {

using namespace clerk;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using proxy::memory_stream;
using proxy::task;
using error_code = boost::system::error_code;

/// Tokens by name: "good" (and "later-good", which takes the awaited path) verify as machine
/// mch_test with scope "read"; anything else is an unknown token.
class token_table final : public proxy::authenticator {
public:
    task<proxy::auth_result> authenticate(std::string_view token, core::token_class /*cls*/,
                                          std::chrono::steady_clock::time_point /*d*/) override {
        co_return answer(token);
    }
    task<proxy::auth_result> authenticate_bearer(
        std::string_view token, const core::token_acceptance& /*accepts*/,
        std::chrono::steady_clock::time_point /*deadline*/) override {
        ++awaited;
        co_return answer(token);
    }
    std::optional<proxy::auth_result> authenticate_bearer_now(
        std::string_view token, const core::token_acceptance& /*accepts*/) override {
        if (token.starts_with("later-")) {
            return std::nullopt;
        }
        return answer(token);
    }
    int awaited = 0;

private:
    static proxy::auth_result answer(std::string_view token) {
        proxy::auth_result r;
        r.type = core::token_type::m2m_token;
        if (token == "good" || token == "later-good") {
            auto who = std::make_shared<core::principal>();
            who->subject = "mch_test";
            who->scopes = {"read"};
            auto id = std::make_shared<core::identity>();
            id->token_id = "mt_test";
            id->who = std::move(who);
            r.id = std::move(id);
            return r;
        }
        r.decision = {core::decision_kind::invalid_token, "not_found"};
        return r;
    }
};

/// What the scripted upstream does on a connection.
enum class upstream_act {
    answer,               ///< answers every request: 200, body "seen <METHOD> <target>"
    answer_then_close,    ///< answers one request with Connection: close
    close_after_request,  ///< reads one request, closes without answering
    garbage,              ///< reads one request, answers bytes that are not HTTP
    close_at_once,        ///< closes before reading anything
};

struct received_request {
    std::string method;
    std::string target;
    http::fields fields;
    std::string body;
};

/// One event loop with a session on an in-memory client connection, a runtime whose upstream
/// pool hands out in-memory connections to the scripted upstream, and the token table.
class harness {
public:
    explicit harness(std::string_view extra_yaml = "") {
        std::string yaml =
            "listen: 127.0.0.1:0\n"
            "upstream:\n  url: http://upstream.test:8080\n"
            "clerk:\n  machine_secret_key: ak_test\n"
            "log:\n  access_log: false\n  level: error\n";
        yaml += extra_yaml;
        auto loaded = config::load_config_string(
            yaml, "session_relay_test.yaml",
            [](std::string_view) { return std::optional<std::string>{}; });
        for (const auto& e : loaded.errors) {
            FAIL(e.to_string());
        }
        std::string error;
        pool_ = proxy::upstream_pool::create(ioc_.get_executor(), loaded.cfg->upstream, error);
        REQUIRE(pool_);
        pool_->set_connector([this](proxy::upstream_pool::connection& c) -> error_code {
            ++connects;
            if (acts.empty()) {
                return net::error::connection_refused;
            }
            const auto act = acts.front();
            acts.pop_front();
            c.stream = open_upstream(act);
            return {};
        });
        auth_ = std::make_shared<token_table>();
        auto cache = std::make_shared<core::verification_cache>(core::cache_options{},
                                                                core::system_clock::instance());
        holder_.store(
            std::make_shared<proxy::runtime>(proxy::runtime{loaded.cfg,
                                                            core::header_rules(loaded.cfg->headers),
                                                            auth_,
                                                            std::move(cache),
                                                            {pool_}}));
        pin_ = std::make_unique<proxy::loop_runtime>(holder_);
        env_.runtime = pin_.get();
        env_.registry = &registry_;
        env_.m = &metrics_;
    }

    ~harness() {
        client_.close();
        settle();
    }

    harness(const harness&) = delete;
    harness& operator=(const harness&) = delete;

    /// Acts of the next new upstream connections, in order (none left: connect refused).
    std::deque<upstream_act> acts;
    /// Requests as the upstream received them, in order.
    std::vector<received_request> seen;
    int connects = 0;  ///< new upstream connections made
    bool session_done = false;

    /// An idle pooled connection (as if released by an earlier request) whose upstream end
    /// does `act`.
    void pool_idle(upstream_act act) { pool_->release(open_upstream(act)); }

    /// Starts the session on a new client connection.
    void connect_client() {
        memory_stream proxy_end(ioc_.get_executor());
        client_.connect(proxy_end);
        net::co_spawn(ioc_,
                      proxy::run_session(proxy::any_stream(std::in_place_type<memory_stream>,
                                                           std::move(proxy_end)),
                                         "192.0.2.7", env_),
                      [this](const std::exception_ptr& e) {
                          session_done = true;
                          if (e) {
                              std::rethrow_exception(e);
                          }
                      });
        settle();
    }

    /// Sends bytes from the client and lets every side run until all wait.
    void send(std::string_view bytes) {
        net::write(client_, net::buffer(bytes));
        settle();
    }

    /// The responses the client has received since the last call (complete ones; a partial
    /// one fails the test).
    std::vector<http::response<http::string_body>> responses() {
        std::string bytes = client_.str();
        client_.clear();
        std::vector<http::response<http::string_body>> out;
        std::string_view rest(bytes);
        while (!rest.empty()) {
            http::response_parser<http::string_body> p;
            p.eager(true);
            error_code ec;
            const auto used = p.put(net::buffer(rest.data(), rest.size()), ec);
            INFO(bytes);
            REQUIRE_FALSE(ec);
            REQUIRE(p.is_done());
            rest.remove_prefix(used);
            out.push_back(p.release());
        }
        return out;
    }

    /// The one response the client has received since the last call.
    http::response<http::string_body> one_response() {
        auto all = responses();
        REQUIRE(all.size() == 1);
        return std::move(all.front());
    }

    /// True when the proxy closed (or half-closed) its end of the client connection.
    bool client_sees_eof() {
        std::optional<error_code> got;
        char c = 0;
        client_.async_read_some(net::buffer(&c, 1),
                                [&got](error_code ec, std::size_t) { got = ec; });
        settle();
        if (!got) {
            client_.close();  // cancels the read
            settle();
            return false;
        }
        return *got == net::error::eof;
    }

    /// Closes the client's end.
    void close_client() {
        client_.close();
        settle();
    }

    std::size_t idle_upstreams() {
        proxy::upstream_pool::connection c;
        std::size_t n = 0;
        std::vector<proxy::upstream_pool::connection> taken;
        while (pool_->take_idle(c, true)) {
            ++n;
            taken.push_back(std::move(c));
        }
        for (auto& t : taken) {
            pool_->release(std::move(t.stream));
        }
        return n;
    }

    token_table& auth() { return *auth_; }

    /// Starts a drain (SIGTERM's first step) and lets the loop run.
    void drain() {
        registry_.drain();
        settle();
    }

private:
    void settle() {
        for (int i = 0; i < 1000; ++i) {
            ioc_.restart();
            if (ioc_.poll() == 0) {
                return;
            }
        }
        FAIL("the loop never settled");
    }

    std::unique_ptr<proxy::any_stream> open_upstream(upstream_act act) {
        memory_stream ours(ioc_.get_executor());
        auto peer = std::make_unique<memory_stream>(ioc_.get_executor());
        ours.connect(*peer);
        net::co_spawn(ioc_, run_upstream(std::move(peer), act), [](const std::exception_ptr& e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
        return std::make_unique<proxy::any_stream>(std::in_place_type<memory_stream>,
                                                   std::move(ours));
    }

    task<void> run_upstream(std::unique_ptr<memory_stream> peer, upstream_act act) {
        if (act == upstream_act::close_at_once) {
            peer->close();
            co_return;
        }
        beast::flat_buffer buf;
        for (;;) {
            http::request<http::string_body> req;
            auto [ec, n] = co_await http::async_read(*peer, buf, req, proxy::deferred_tuple);
            if (ec) {
                co_return;
            }
            seen.push_back(received_request{std::string(req.method_string()),
                                            std::string(req.target()), req.base(), req.body()});
            if (act == upstream_act::close_after_request) {
                peer->close();
                co_return;
            }
            if (act == upstream_act::garbage) {
                static constexpr std::string_view junk = "NOT HTTP AT ALL\r\n\r\n";
                co_await net::async_write(*peer, net::buffer(junk), proxy::deferred_tuple);
                peer->close();
                co_return;
            }
            http::response<http::string_body> res{http::status::ok, 11};
            res.set(http::field::content_type, "text/plain");
            res.set("X-Clerk-Subject", "from-upstream");  // a response header: passed through
            res.body() = "seen " + seen.back().method + " " + seen.back().target;
            res.keep_alive(act == upstream_act::answer);
            res.prepare_payload();
            auto [wec, wn] = co_await http::async_write(*peer, res, proxy::use_task_tuple);
            if (wec || act == upstream_act::answer_then_close) {
                peer->close();
                co_return;
            }
        }
    }

    net::io_context ioc_;
    proxy::metrics metrics_;
    proxy::connection_registry registry_;
    proxy::runtime_holder holder_;
    std::unique_ptr<proxy::loop_runtime> pin_;
    proxy::session_env env_;
    std::shared_ptr<proxy::upstream_pool> pool_;
    std::shared_ptr<token_table> auth_;
    memory_stream client_{ioc_.get_executor()};
};

inline std::string get(std::string_view target, std::string_view extra = "") {
    return "GET " + std::string(target) +
           " HTTP/1.1\r\nHost: svc\r\nAuthorization: Bearer good\r\n" + std::string(extra) + "\r\n";
}

inline std::string reason_of(const http::response<http::string_body>& r) {
    const auto j = nlohmann::json::parse(r.body(), nullptr, false);
    return j.is_object() && j.contains("reason") ? j["reason"].get<std::string>() : "";
}

}  // namespace session_relay
