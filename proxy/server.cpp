#include "proxy/server.hpp"

#include "config/load.hpp"
#include "proxy/access_log.hpp"
#include "proxy/admin.hpp"
#include "proxy/http/connection_registry.hpp"
#include "proxy/http/listener.hpp"
#include "proxy/http/session.hpp"
#include "proxy/logging.hpp"
#include "proxy/metrics.hpp"
#include "proxy/net/tls.hpp"
#include "proxy/runtime.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <exception>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace clerk::proxy {
namespace {

using clock = std::chrono::steady_clock;

/// How often the config file's content is compared with what was last loaded. Kubernetes
/// updates a mounted ConfigMap by swapping a symlink; reading through the path sees the swap.
constexpr auto config_poll_interval = std::chrono::seconds(1);

/// The file's content, or nullopt when it cannot be read (mid-swap, removed).
std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    std::ostringstream out;
    out << in.rdbuf();
    return std::move(out).str();
}

/// Logs what escaped a coroutine (anything but an expected network outcome) and carries on:
/// one broken connection must not take the process down.
auto log_exception(const char* what) {
    return [what](std::exception_ptr e) {
        if (!e) {
            return;
        }
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            get_logger("main")->error("{}: unexpected exception: {}", what, ex.what());
        } catch (...) {
            get_logger("main")->error("{}: unexpected exception", what);
        }
    };
}

bool same_listen(const std::optional<config::listen_address>& a,
                 const std::optional<config::listen_address>& b) {
    return a.has_value() == b.has_value() && (!a || (a->host == b->host && a->port == b->port));
}

/// The process (CONTRIBUTING.md §4): `threads` event loops, one io_context per thread (concurrency
/// hint 1), each with its own SO_REUSEPORT listening socket, so a connection lives on the loop
/// that accepted it and the request path needs no strand and no cross-thread hand-off. Loop 0
/// also runs the control plane: signals, the config watcher, reloads, the admin listener and the
/// Clerk/JWKS clients (a cache miss is handed to it and its answer posted back).
class server {
public:
    explicit server(std::shared_ptr<const config::config> cfg)
        : boot_cfg_(std::move(cfg)),
          threads_(boot_cfg_->threads != 0 ? boot_cfg_->threads
                                           : std::max(1U, std::thread::hardware_concurrency())),
          loops_(make_loops(threads_)),
          signals_(*loops_.front()),
          log_(get_logger("main")) {
        for (auto& l : loops_) {
            executors_.push_back(l->get_executor());
            guards_.emplace_back(l->get_executor());
            pins_.push_back(std::make_unique<loop_runtime>(runtime_));
        }
    }

    int run() {
        for (const auto& w : boot_cfg_->warnings) {
            get_logger("config")->warn("{}", w);
        }
        if (!start()) {
            return 1;
        }
        // Signals and the file watcher run on loop 0 (one thread), so reloads never overlap.
        net::co_spawn(control(), handle_signals(), log_exception("signals"));
        net::co_spawn(control(), watch_config_file(), log_exception("config watcher"));
        for (auto& ex : executors_) {
            net::co_spawn(ex, flush_access_log_periodically(), log_exception("access log"));
        }
        std::vector<std::thread> workers;
        for (unsigned i = 1; i < threads_; ++i) {
            workers.emplace_back([this, i] { run_loop(*loops_[i]); });
        }
        run_loop(*loops_.front());
        for (auto& t : workers) {
            t.join();
        }
        log_->info("stopped");
        return 0;
    }

private:
    static std::vector<std::unique_ptr<net::io_context>> make_loops(unsigned n) {
        std::vector<std::unique_ptr<net::io_context>> v;
        for (unsigned i = 0; i < n; ++i) {
            v.push_back(std::make_unique<net::io_context>(1));
        }
        return v;
    }
    net::any_io_executor control() { return executors_.front(); }

    /// Runs one event loop on the calling thread; its access-log lines are batched meanwhile.
    static void run_loop(net::io_context& loop) {
        access_log_batching(true);
        loop.run();
        access_log_batching(false);  // writes what is left
    }

    /// Each loop writes its batched access-log lines at least every 100 ms.
    static net::awaitable<void> flush_access_log_periodically() {
        const auto executor = co_await net::this_coro::executor;
        net::steady_timer timer(executor);
        for (;;) {
            timer.expires_after(std::chrono::milliseconds(100));
            auto [ec] = co_await timer.async_wait(use_tuple);
            flush_access_log();
            if (ec) {
                co_return;
            }
        }
    }

    // --- start: snapshot, TLS, bind both listeners (exit 1 on failure), then serve
    bool start() {
        // Installed before anything is logged as listening: a test (or kubelet) may signal as
        // soon as it sees the line.
        signals_.add(SIGTERM);
        signals_.add(SIGINT);
        signals_.add(SIGHUP);
        config_content_ = read_file(boot_cfg_->source_path);
        std::vector<std::string> errors;
        auto rt = build_runtime(executors_, boot_cfg_, nullptr, metrics_, errors);
        if (!rt) {
            for (const auto& e : errors) {
                log_->error("{}", e);
            }
            return false;
        }
        rt->auth->start();
        runtime_.store(rt);
        metrics_.set_cache_entries_source([this] {
            const auto r = runtime_.load();
            return r && r->cache ? r->cache->size() : std::size_t{0};
        });

        std::string error;
        std::shared_ptr<net::ssl::context> tls;
        if (boot_cfg_->tls.enabled()) {
            tls = make_server_tls_context(boot_cfg_->tls, error, boot_cfg_->http2);
            if (!tls) {
                log_->error("{}", error);
                return false;
            }
        }
        // One listening socket per loop on the same address (SO_REUSEPORT); with port 0 the
        // first picks the port and the others join it.
        config::listen_address addr = boot_cfg_->listen;
        for (std::size_t i = 0; i < loops_.size(); ++i) {
            auto l = listener::bind(executors_[i], addr, error, /*reuse_port=*/true);
            if (!l) {
                log_->error("{}", error);
                return false;
            }
            addr.port = l->local_endpoint().port();
            mains_.push_back(std::move(l));
            auto env = std::make_unique<session_env>();
            env->loop = i;
            env->runtime = pins_[i].get();
            env->registry = &registry_;
            env->m = &metrics_;
            env->tls = tls;
            env->http2 = boot_cfg_->http2;
            envs_.push_back(std::move(env));
        }
        if (boot_cfg_->admin.listen) {
            admin_ = listener::bind(control(), *boot_cfg_->admin.listen, error);
            if (!admin_) {
                log_->error("{}", error);
                return false;
            }
        }
        admin_state_.m = &metrics_;

        for (std::size_t i = 0; i < mains_.size(); ++i) {
            const session_env* env = envs_[i].get();
            net::co_spawn(mains_[i]->executor(),
                          mains_[i]->run([this, env](net::ip::tcp::socket s) {
                              accept_session(std::move(s), *env);
                          }),
                          log_exception("listener"));
        }
        get_logger("listener")
            ->info("listening on {}", to_string(mains_.front()->local_endpoint()));
        if (admin_) {
            net::co_spawn(admin_->executor(), admin_->run([this](net::ip::tcp::socket s) {
                auto ex = s.get_executor();
                net::co_spawn(ex, run_admin_session(std::move(s), admin_state_),
                              log_exception("admin session"));
            }),
                          log_exception("admin listener"));
            get_logger("admin")->info("admin listening on {}", to_string(admin_->local_endpoint()));
        }
        admin_state_.ready.store(true, std::memory_order_release);
        return true;
    }

    void accept_session(net::ip::tcp::socket s, const session_env& env) {
        // limits.max_connections (reloadable): an excess connection is closed at once, before
        // any byte is read, which costs the least and tells a client to back off.
        const auto limit = env.runtime->current()->rt->cfg->limits.max_connections;
        if (registry_.size() >= limit || registry_.draining()) {
            boost::system::error_code ec;
            s.close(ec);
            return;
        }
        auto ex = s.get_executor();
        net::co_spawn(loop_of(ex), run_session(std::move(s), env), log_exception("session"));
    }

    // --- signals: SIGHUP reloads, SIGTERM/SIGINT drain and stop
    net::awaitable<void> handle_signals() {
        for (;;) {
            auto [ec, sig] = co_await signals_.async_wait(use_tuple);
            if (ec) {
                co_return;
            }
            if (sig == SIGHUP) {
                reload();
                continue;
            }
            // Not ready any more before anyone (a test, the kubelet) can read that we drain.
            stopping_ = true;
            admin_state_.ready.store(false, std::memory_order_release);
            log_->info("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            co_await drain();
            co_return;
        }
    }

    // --- config file watcher: a change of content reloads exactly as SIGHUP does
    net::awaitable<void> watch_config_file() {
        net::steady_timer timer(control());
        for (;;) {
            timer.expires_after(config_poll_interval);
            auto [ec] = co_await timer.async_wait(use_tuple);
            if (ec || stopping_) {
                co_return;
            }
            const auto content = read_file(runtime_.load()->cfg->source_path);
            if (content && content != config_content_) {
                get_logger("config")->info("config file content changed; reloading");
                reload();
            }
        }
    }

    void reload() {
        const auto old = runtime_.load();
        auto log = get_logger("config");
        // Remember what this attempt read, so a broken file is retried only once it changes.
        config_content_ = read_file(old->cfg->source_path);
        auto res = config::load_config_file(old->cfg->source_path);
        if (!res.ok()) {
            for (const auto& e : res.errors) {
                log->error("reload failed: {}", e.to_string());
            }
            log->error("reload failed: keeping the previous configuration");
            return;
        }
        const auto& next = *res.cfg;
        if (next.listen.host != old->cfg->listen.host ||
            next.listen.port != old->cfg->listen.port ||
            !same_listen(next.admin.listen, old->cfg->admin.listen) ||
            next.threads != old->cfg->threads || next.tls.cert_file != old->cfg->tls.cert_file ||
            next.tls.key_file != old->cfg->tls.key_file || next.mode != old->cfg->mode ||
            next.http2 != old->cfg->http2) {
            log->warn(
                "listen, admin.listen, tls, mode, http2 and threads changes need a restart; "
                "the running values are kept");
        }
        std::vector<std::string> errors;
        auto rt = build_runtime(executors_, res.cfg, old.get(), metrics_, errors);
        if (!rt) {
            for (const auto& e : errors) {
                log->error("reload failed: {}", e);
            }
            log->error("reload failed: keeping the previous configuration");
            return;
        }
        for (const auto& w : next.warnings) {
            log->warn("{}", w);
        }
        setup_logging(next.log);
        rt->auth->start();
        runtime_.store(rt);
        if (old->auth != rt->auth) {
            old->auth->stop();
        }
        log->info("configuration reloaded from {}", next.source_path);
    }

    // --- drain: stop accepting, /readyz 503, let in-flight requests finish
    net::awaitable<void> drain() {
        admin_state_.ready.store(false, std::memory_order_release);
        for (auto& l : mains_) {
            l->close();
        }
        registry_.drain();
        const auto timeout = runtime_.load()->cfg->shutdown.drain_timeout;
        const bool clean = co_await wait_for_connections(clock::now() + timeout);
        if (!clean) {
            log_->warn("drain timeout after {} ms: closing {} connection(s)", timeout.count(),
                       registry_.size());
            registry_.close_all();
            co_await wait_for_connections(clock::now() + std::chrono::seconds(2));
        }
        if (admin_) {
            admin_->close();
        }
        const auto rt = runtime_.load();
        rt->auth->stop();
        for (std::size_t i = 0; i < rt->upstreams.size(); ++i) {
            // Each pool's sockets belong to its loop: closed there.
            net::post(executors_[i], [pool = rt->upstreams[i]] { pool->close_idle(); });
        }
        // HTTP/2 upstream connections send their GOAWAY before the loops stop (at most 1 s).
        for (const auto stop_at = clock::now() + std::chrono::seconds(1);;) {
            std::size_t open = 0;
            for (std::size_t i = 0; i < rt->upstreams.size(); ++i) {
                open += co_await net::co_spawn(executors_[i], h2_open_of(rt->upstreams[i]),
                                               net::use_awaitable);
            }
            if (open == 0 || clock::now() >= stop_at) {
                break;
            }
            net::steady_timer t(control(), std::chrono::milliseconds(10));
            co_await t.async_wait(use_tuple);
        }
        log_->info("drained; exiting");
        // Let the loops finish what was just posted, then stop them all.
        for (auto& g : guards_) {
            g.reset();
        }
        for (std::size_t i = 1; i < loops_.size(); ++i) {
            net::post(executors_[i], [this, i] { loops_[i]->stop(); });
        }
        net::post(control(), [this] { loops_.front()->stop(); });
    }

    /// Run on the pool's loop: its HTTP/2 connections not closed yet.
    static net::awaitable<std::size_t> h2_open_of(std::shared_ptr<upstream_pool> pool) {
        co_return pool->h2_open();
    }

    net::awaitable<bool> wait_for_connections(clock::time_point deadline) {
        net::steady_timer timer(control());
        while (registry_.size() > 0 && clock::now() < deadline) {
            timer.expires_after(std::chrono::milliseconds(20));
            co_await timer.async_wait(use_tuple);
        }
        co_return registry_.size() == 0;
    }

    std::shared_ptr<const config::config> boot_cfg_;
    unsigned threads_;
    std::vector<std::unique_ptr<net::io_context>> loops_;  // [0]: also the control plane
    std::vector<net::any_io_executor> executors_;
    std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
    net::signal_set signals_;
    std::optional<std::string> config_content_;  // last content loaded (loop 0)
    bool stopping_ = false;                      // set on loop 0
    std::shared_ptr<spdlog::logger> log_;
    metrics& metrics_ = metrics::global();
    runtime_holder runtime_;
    std::vector<std::unique_ptr<loop_runtime>> pins_;  // one per loop
    connection_registry registry_;
    std::vector<std::unique_ptr<session_env>> envs_;  // one per loop
    admin_state admin_state_;
    std::vector<std::unique_ptr<listener>> mains_;  // one per loop (SO_REUSEPORT)
    std::unique_ptr<listener> admin_;
};

}  // namespace

int run_server(std::shared_ptr<const config::config> cfg) {
    // Writes to a closed peer must be errors, not a process-killing signal.
    std::signal(SIGPIPE, SIG_IGN);
    setup_logging(cfg->log);
    try {
        server s(std::move(cfg));
        return s.run();
    } catch (const std::exception& e) {
        get_logger("main")->error("fatal: {}", e.what());
        return 1;
    }
}

}  // namespace clerk::proxy
