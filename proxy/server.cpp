#include "proxy/server.hpp"

// GCC 12 reports false "potential null pointer dereference" warnings inside asio's
// io_context/strand internals when they are inlined at -O2.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wnull-dereference"
#endif

#include "config/load.hpp"
#include "proxy/admin.hpp"
#include "proxy/connection_registry.hpp"
#include "proxy/listener.hpp"
#include "proxy/logging.hpp"
#include "proxy/metrics.hpp"
#include "proxy/runtime.hpp"
#include "proxy/session.hpp"
#include "proxy/tls.hpp"
#include "proxy/upstream_pool.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
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
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

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

/// The process: owns the io_context, the listeners and the current runtime snapshot.
class server {
public:
    explicit server(std::shared_ptr<const config::config> cfg)
        : boot_cfg_(std::move(cfg)),
          threads_(boot_cfg_->threads != 0 ? boot_cfg_->threads
                                           : std::max(1U, std::thread::hardware_concurrency())),
          ioc_(static_cast<int>(threads_)),
          signals_(ioc_),
          control_(net::make_strand(ioc_)),
          log_(get_logger("main")) {}

    int run() {
        for (const auto& w : boot_cfg_->warnings) {
            get_logger("config")->warn("{}", w);
        }
        if (!start()) {
            return 1;
        }
        // Signals and the file watcher share one strand, so reloads never run concurrently.
        net::co_spawn(control_, handle_signals(), log_exception("signals"));
        net::co_spawn(control_, watch_config_file(), log_exception("config watcher"));
        std::vector<std::thread> workers;
        for (unsigned i = 1; i < threads_; ++i) {
            workers.emplace_back([this] { ioc_.run(); });
        }
        ioc_.run();
        for (auto& t : workers) {
            t.join();
        }
        log_->info("stopped");
        return 0;
    }

private:
    // --- start: snapshot, TLS, bind both listeners (exit 1 on failure), then serve
    bool start() {
        // Installed before anything is logged as listening: a test (or kubelet) may signal as
        // soon as it sees the line.
        signals_.add(SIGTERM);
        signals_.add(SIGINT);
        signals_.add(SIGHUP);
        config_content_ = read_file(boot_cfg_->source_path);
        std::vector<std::string> errors;
        auto rt = build_runtime(ioc_.get_executor(), boot_cfg_, nullptr, metrics_, errors);
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
        if (boot_cfg_->tls.enabled()) {
            env_.tls = make_server_tls_context(boot_cfg_->tls, error);
            if (!env_.tls) {
                log_->error("{}", error);
                return false;
            }
        }
        env_.runtime = &runtime_;
        env_.registry = &registry_;
        env_.m = &metrics_;

        main_ = listener::bind(ioc_.get_executor(), boot_cfg_->listen, error);
        if (!main_) {
            log_->error("{}", error);
            return false;
        }
        if (boot_cfg_->admin.listen) {
            admin_ = listener::bind(ioc_.get_executor(), *boot_cfg_->admin.listen, error);
            if (!admin_) {
                log_->error("{}", error);
                return false;
            }
        }
        admin_state_.m = &metrics_;

        net::co_spawn(main_->executor(),
                      main_->run([this](net::ip::tcp::socket s) { accept_session(std::move(s)); }),
                      log_exception("listener"));
        get_logger("listener")->info("listening on {}", to_string(main_->local_endpoint()));
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

    void accept_session(net::ip::tcp::socket s) {
        // limits.max_connections (reloadable): an excess connection is closed at once, before
        // any byte is read, which costs the least and tells a client to back off.
        const auto limit = runtime_.load()->cfg->limits.max_connections;
        if (registry_.size() >= limit || registry_.draining()) {
            boost::system::error_code ec;
            s.close(ec);
            return;
        }
        auto ex = s.get_executor();
        net::co_spawn(ex, run_session(std::move(s), env_), log_exception("session"));
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
        net::steady_timer timer(control_);
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
            next.tls.key_file != old->cfg->tls.key_file || next.mode != old->cfg->mode) {
            log->warn(
                "listen, admin.listen, tls, mode and threads changes need a restart; "
                "the running values are kept");
        }
        std::vector<std::string> errors;
        auto rt = build_runtime(ioc_.get_executor(), res.cfg, old.get(), metrics_, errors);
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
        main_->close();
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
        if (rt->upstream) {
            rt->upstream->close_idle();
        }
        log_->info("drained; exiting");
        ioc_.stop();
    }

    net::awaitable<bool> wait_for_connections(clock::time_point deadline) {
        net::steady_timer timer(ioc_);
        while (registry_.size() > 0 && clock::now() < deadline) {
            timer.expires_after(std::chrono::milliseconds(20));
            co_await timer.async_wait(use_tuple);
        }
        co_return registry_.size() == 0;
    }

    std::shared_ptr<const config::config> boot_cfg_;
    unsigned threads_;
    net::io_context ioc_;
    net::signal_set signals_;
    net::strand<net::io_context::executor_type> control_;  // signals, file watcher, reload
    std::optional<std::string> config_content_;            // last content loaded (control_)
    bool stopping_ = false;                                // set on control_
    std::shared_ptr<spdlog::logger> log_;
    metrics& metrics_ = metrics::global();
    runtime_holder runtime_;
    connection_registry registry_;
    session_env env_;
    admin_state admin_state_;
    std::unique_ptr<listener> main_;
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
