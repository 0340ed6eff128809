#include "proxy/auth/redis_client.hpp"

#include "proxy/logging.hpp"
#include "proxy/net/any_stream.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <hiredis/hiredis.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <deque>

namespace clerk::proxy {
namespace {

using boost::system::error_code;
using clock = std::chrono::steady_clock;

/// After this many commands in a row timed out, the connection is presumed dead (a peer that
/// vanished without a reset) and replaced.
constexpr int max_consecutive_timeouts = 3;

redis_reply convert(const redisReply& r) {
    redis_reply out;
    switch (r.type) {
        case REDIS_REPLY_STRING:
            out.type = redis_reply::kind::string;
            out.str.assign(r.str, r.len);
            break;
        case REDIS_REPLY_NIL:
            out.type = redis_reply::kind::nil;
            break;
        case REDIS_REPLY_STATUS:
            out.type = redis_reply::kind::status;
            out.str.assign(r.str, r.len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = redis_reply::kind::error;
            out.str.assign(r.str, r.len);
            break;
        case REDIS_REPLY_INTEGER:
            out.type = redis_reply::kind::integer;
            out.integer = r.integer;
            break;
        default:
            out.type = redis_reply::kind::other;
    }
    return out;
}

/// Where the connector (upstream_pool) should connect: the Redis server as an "upstream".
config::upstream_config connector_settings(const config::shared_cache_config& cfg) {
    config::upstream_config u;
    switch (cfg.transport) {
        case config::redis_transport::tcp:
            u.scheme = config::upstream_scheme::http;  // plain TCP; nothing HTTP is sent
            break;
        case config::redis_transport::tls:
            u.scheme = config::upstream_scheme::https;  // TLS with verification and SNI
            break;
        case config::redis_transport::unix_socket:
            u.scheme = config::upstream_scheme::unix_socket;
            u.unix_path = cfg.path;
            break;
    }
    u.host = cfg.host;
    u.port = cfg.port;
    u.connect_timeout = std::max(cfg.timeout, config::millis(1000));
    u.max_idle_connections = 0;
    u.tls_verify = true;
    u.ca_file = cfg.ca_file;
    return u;
}

class redis_connection final : public redis_client,
                               public std::enable_shared_from_this<redis_connection> {
public:
    redis_connection(net::any_io_executor exec, const config::shared_cache_config& cfg,
                     std::shared_ptr<upstream_pool> connector)
        : exec_(std::move(exec)),
          cfg_(cfg),
          connector_(std::move(connector)),
          backoff_timer_(exec_),
          log_(get_logger("cache")) {
        where_ = cfg_.transport == config::redis_transport::unix_socket
                     ? cfg_.path
                     : cfg_.host + ":" + std::to_string(cfg_.port);  // never the URL
    }
    ~redis_connection() override {
        if (reader_ != nullptr) {
            redisReaderFree(reader_);
        }
    }

    void start() override {
        net::post(exec_, [self = shared_from_this()] {
            if (self->started_ || self->stopped_) {
                return;
            }
            self->started_ = true;
            net::co_spawn(self->exec_, self->run(), net::detached);
        });
    }

    void stop() override {
        net::post(exec_, [self = shared_from_this()] {
            self->stopped_ = true;
            self->backoff_timer_.cancel();
            self->drop_connection();
        });
    }

    bool connected() const override { return ready_; }

    net::awaitable<std::optional<redis_reply>> command(std::vector<std::string> args) override {
        if (!ready_) {
            co_return std::nullopt;
        }
        co_return co_await send(std::move(args));
    }

private:
    struct waiter {
        explicit waiter(const net::any_io_executor& ex) : timer(ex) {}
        net::steady_timer timer;
        std::optional<redis_reply> reply;
        bool done = false;
    };

    // --- the connection's life: connect, handshake, read replies; again after a backoff
    net::awaitable<void> run() {
        auto self = shared_from_this();
        auto backoff = std::chrono::milliseconds(100);
        while (!stopped_) {
            upstream_pool::connection c;
            // The pool's coroutines run on the loop's concrete executor (proxy/net/net.hpp): this
            // one (once per connection, not per command) is spawned there and awaited.
            const error_code ec = co_await net::co_spawn(
                loop_of(exec_), connector_->acquire(c, /*fresh=*/true), net::use_awaitable);
            if (!ec && !stopped_) {
                stream_ = std::shared_ptr<any_stream>(std::move(c.stream));
                ++generation_;
                out_.clear();
                if (reader_ != nullptr) {
                    redisReaderFree(reader_);
                }
                reader_ = redisReaderCreate();
                net::co_spawn(exec_, handshake(generation_), net::detached);
                const std::string why = co_await read_loop(stream_);
                drop_connection();
                if (!stopped_) {
                    complain("connection to " + where_ + " lost: " + why);
                    backoff = std::chrono::milliseconds(100);
                }
            } else if (!stopped_) {
                complain("cannot connect to " + where_ + ": " + ec.message());
            }
            if (stopped_) {
                break;
            }
            backoff_timer_.expires_after(backoff);
            co_await backoff_timer_.async_wait(use_tuple);
            backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
        }
    }

    /// AUTH and SELECT when configured; the connection serves commands only after them.
    net::awaitable<void> handshake(std::uint64_t gen) {
        auto self = shared_from_this();
        if (!cfg_.password.empty() || !cfg_.username.empty()) {
            std::vector<std::string> auth{"AUTH"};
            if (!cfg_.username.empty()) {
                auth.push_back(cfg_.username);
            }
            auth.push_back(cfg_.password);
            const auto r = co_await send(std::move(auth));
            if (gen != generation_) {
                co_return;
            }
            if (!r || r->type != redis_reply::kind::status) {
                // The server's error text names no secret ("WRONGPASS invalid username-password
                // pair"); the password itself is never logged.
                complain("AUTH refused by " + where_ + (r ? ": " + r->str : std::string()));
                drop_connection();
                co_return;
            }
        }
        if (cfg_.db != 0) {
            // Built outside the co_await: GCC 12 miscompiles a braced list of string literals
            // inside one ("array used as initializer").
            std::vector<std::string> select{"SELECT", std::to_string(cfg_.db)};
            const auto r = co_await send(std::move(select));
            if (gen != generation_) {
                co_return;
            }
            if (!r || r->type != redis_reply::kind::status) {
                complain("SELECT " + std::to_string(cfg_.db) + " refused by " + where_);
                drop_connection();
                co_return;
            }
        }
        if (gen == generation_ && stream_) {
            ready_ = true;
            timeouts_ = 0;
            log_->info("shared cache: connected to Redis at {}", where_);
        }
    }

    /// Reads and dispatches replies until the connection breaks; returns why.
    net::awaitable<std::string> read_loop(std::shared_ptr<any_stream> s) {
        std::array<char, 16384> buf;
        for (;;) {
            auto [ec, n] = co_await s->async_read_some(net::buffer(buf), use_tuple);
            if (ec) {
                co_return ec.message();
            }
            if (redisReaderFeed(reader_, buf.data(), n) != REDIS_OK) {
                co_return "protocol error";
            }
            for (;;) {
                void* raw = nullptr;
                if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
                    co_return "protocol error";
                }
                if (raw == nullptr) {
                    break;
                }
                const redis_reply r = convert(*static_cast<redisReply*>(raw));
                freeReplyObject(raw);
                if (inflight_.empty()) {
                    co_return "a reply nobody asked for";
                }
                auto w = std::move(inflight_.front());
                inflight_.pop_front();
                if (!w->done) {
                    w->done = true;
                    w->reply = r;
                    w->timer.cancel();
                }
            }
        }
    }

    /// Queues one command behind the others and waits for its reply (in order) or the timeout.
    net::awaitable<std::optional<redis_reply>> send(std::vector<std::string> args) {
        auto self = shared_from_this();
        if (!stream_) {
            co_return std::nullopt;
        }
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        char* cmd = nullptr;
        const int len =
            redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), argv.data(), lens.data());
        if (len < 0 || cmd == nullptr) {
            co_return std::nullopt;
        }
        out_.append(cmd, static_cast<std::size_t>(len));
        redisFreeCommand(cmd);
        auto w = std::make_shared<waiter>(exec_);
        inflight_.push_back(w);
        kick_writer();
        w->timer.expires_after(cfg_.timeout);
        co_await w->timer.async_wait(use_tuple);
        if (!w->done) {
            w->done = true;  // its reply, when it comes, is dropped in order
            if (++timeouts_ >= max_consecutive_timeouts && stream_) {
                complain("no reply from " + where_ + " within " +
                         std::to_string(cfg_.timeout.count()) + " ms, " +
                         std::to_string(timeouts_) + " times in a row: reconnecting");
                stream_->close();  // read_loop ends; run() reconnects
            }
            co_return std::nullopt;
        }
        timeouts_ = 0;
        co_return std::move(w->reply);
    }

    void kick_writer() {
        if (writing_ || !stream_ || out_.empty()) {
            return;
        }
        writing_ = true;
        net::co_spawn(exec_, write_loop(stream_, generation_), net::detached);
    }

    net::awaitable<void> write_loop(std::shared_ptr<any_stream> s, std::uint64_t gen) {
        auto self = shared_from_this();
        std::string batch;
        while (gen == generation_ && !out_.empty()) {
            batch.swap(out_);
            out_.clear();
            auto [ec, n] = co_await net::async_write(*s, net::buffer(batch), use_tuple);
            if (ec) {
                s->close();  // read_loop sees it and reconnects
                break;
            }
            batch.clear();
        }
        if (gen == generation_) {
            writing_ = false;
        }
    }

    void drop_connection() {
        ready_ = false;
        ++generation_;
        writing_ = false;
        out_.clear();
        if (stream_) {
            stream_->close();
            stream_.reset();
        }
        for (auto& w : inflight_) {
            if (!w->done) {
                w->done = true;
                w->timer.cancel();
            }
        }
        inflight_.clear();
    }

    /// At most one line per 10 s: a Redis outage must not flood the log.
    void complain(const std::string& what) {
        const auto now = clock::now();
        if (now - last_complaint_ >= std::chrono::seconds(10)) {
            last_complaint_ = now;
            log_->warn("shared cache: {} (going on without it)", what);
        }
    }

    net::any_io_executor exec_;
    config::shared_cache_config cfg_;
    std::shared_ptr<upstream_pool> connector_;
    net::steady_timer backoff_timer_;
    std::shared_ptr<spdlog::logger> log_;
    std::string where_;
    std::shared_ptr<any_stream> stream_;
    redisReader* reader_ = nullptr;
    std::deque<std::shared_ptr<waiter>> inflight_;
    std::string out_;
    std::uint64_t generation_ = 0;
    int timeouts_ = 0;
    clock::time_point last_complaint_{};
    bool started_ = false;
    bool stopped_ = false;
    bool ready_ = false;
    bool writing_ = false;
};

}  // namespace

std::shared_ptr<redis_client> redis_client::create(net::any_io_executor exec,
                                                   const config::shared_cache_config& cfg,
                                                   std::string& error) {
    auto connector =
        upstream_pool::create(exec, connector_settings(cfg), error, "cache.shared.ca_file");
    if (!connector) {
        return nullptr;
    }
    return std::make_shared<redis_connection>(std::move(exec), cfg, std::move(connector));
}

}  // namespace clerk::proxy
