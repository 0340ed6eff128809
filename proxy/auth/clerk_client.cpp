#include "proxy/auth/clerk_client.hpp"

#include "proxy/logging.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#ifndef CLERK_PROXY_VERSION
#define CLERK_PROXY_VERSION "0.0.0"
#endif

namespace clerk::proxy {

std::string_view to_string(clerk_transport_error e) {
    switch (e) {
        case clerk_transport_error::none:
            return "none";
        case clerk_transport_error::timeout:
            return "timeout";
        case clerk_transport_error::connect:
            return "connect";
        case clerk_transport_error::tls:
            return "tls";
        case clerk_transport_error::io:
            return "io";
    }
    return "io";
}

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

constexpr std::size_t max_body_bytes = 1 << 20;
constexpr std::uint32_t max_header_bytes = 16 * 1024;
/// Idle connections older than this are dropped rather than reused: servers and middleboxes
/// close idle keep-alive connections after a while, and a fresh one is cheaper than a failure.
constexpr std::chrono::seconds max_idle_age{30};

using request_msg = http::request<http::string_body>;

/// One connection to Clerk, bound to its own strand: every operation on it (and on its timers)
/// runs in coroutines spawned on that strand, whichever strand the caller runs on.
struct connection {
    connection(net::any_io_executor strand, ssl::context* tls_ctx) {
        if (tls_ctx != nullptr) {
            tls = std::make_unique<ssl::stream<beast::tcp_stream>>(strand, *tls_ctx);
        } else {
            plain = std::make_unique<beast::tcp_stream>(strand);
        }
    }
    beast::tcp_stream& tcp() { return tls ? tls->next_layer() : *plain; }
    net::any_io_executor executor() { return tcp().get_executor(); }

    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<ssl::stream<beast::tcp_stream>> tls;
    bool connected = false;
    steady::time_point idle_since{};
};

struct exchange_result {
    clerk_http_reply reply;
    std::unique_ptr<connection> reusable;  ///< set when the connection may go back to the pool
    bool retry_fresh = false;  ///< closed before any response byte on a reused connection
};

clerk_http_reply transport_failure(clerk_transport_error e) {
    clerk_http_reply r;
    r.error = e;
    return r;
}

/// async_resolve has no per-operation cancellation in Asio 1.81 and getaddrinfo cannot be
/// interrupted, so the deadline is enforced by racing a timer: whichever completes first
/// resumes the caller, the other's completion is ignored. Both handlers run on the caller's
/// strand (the I/O objects are bound to it), so the shared state needs no lock.
net::awaitable<std::pair<error_code, tcp::resolver::results_type>> resolve_until(
    std::string host, std::string port, steady::time_point deadline) {
    auto ex = co_await net::this_coro::executor;
    auto resolver = std::make_shared<tcp::resolver>(ex);
    auto timer = std::make_shared<net::steady_timer>(ex, deadline);
    using results = tcp::resolver::results_type;
    auto init = [&](auto handler) {
        using handler_t = decltype(handler);
        struct state {
            std::optional<handler_t> h;
        };
        auto st = std::make_shared<state>();
        st->h.emplace(std::move(handler));
        auto finish = [st](error_code e, results r) {
            if (!st->h) {
                return;
            }
            auto h = std::move(*st->h);
            st->h.reset();
            std::move(h)(e, std::move(r));
        };
        resolver->async_resolve(host, port, [finish, timer](error_code e, results r) {
            timer->cancel();
            finish(e, std::move(r));
        });
        timer->async_wait([finish, resolver](error_code e) {
            if (!e) {
                resolver->cancel();
                finish(beast::error::timeout, {});
            }
        });
    };
    auto [ec, res] = co_await net::async_initiate<decltype(use_tuple), void(error_code, results)>(
        init, use_tuple);
    co_return std::pair{ec, std::move(res)};
}

class clerk_client final : public clerk_api {
public:
    clerk_client(net::any_io_executor exec, const config::clerk_config& cfg, std::size_t max_idle)
        : exec_(std::move(exec)),
          host_(cfg.api_host),
          port_(std::to_string(cfg.api_port)),
          base_path_(cfg.api_base_path),
          api_version_(cfg.api_version),
          max_idle_(max_idle) {
        bool v6 = host_.find(':') != std::string::npos;
        host_header_ = v6 ? "[" + host_ + "]" : host_;
        if (cfg.api_port != (cfg.api_url_is_https ? 443 : 80)) {
            host_header_ += ":" + port_;
        }
        error_code ec;
        net::ip::make_address(host_, ec);
        host_is_ip_ = !ec;
        if (cfg.api_url_is_https) {
            tls_ctx_.emplace(ssl::context::tls_client);
            tls_ctx_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                                  ssl::context::no_tlsv1_1);
            ec.clear();
            tls_ctx_->set_default_verify_paths(ec);  // the system CA store
            if (ec) {
                get_logger("clerk")->warn("no system CA store: {}", ec.message());
            }
            if (!cfg.ca_file.empty()) {
                tls_ctx_->load_verify_file(cfg.ca_file, ec);
                if (ec) {
                    // The config loader checked the bundle (config/values.cpp ca_file_problem);
                    // a file changed since fails closed (every call is a TLS failure, so 503)
                    // rather than trusting less or more than configured.
                    get_logger("clerk")->error("clerk.ca_file {}: {}; Clerk calls will fail",
                                               cfg.ca_file, ec.message());
                    broken_ = true;
                }
            }
            tls_ctx_->set_verify_mode(ssl::verify_peer);
        }
    }

    net::awaitable<clerk_http_reply> call(clerk_http_request req,
                                          steady::time_point deadline) override {
        if (broken_) {
            co_return transport_failure(clerk_transport_error::tls);
        }
        if (steady::now() >= deadline) {
            co_return transport_failure(clerk_transport_error::timeout);
        }
        auto msg = std::make_shared<request_msg>(build(req));
        auto conn = take_idle();
        bool reused = conn != nullptr;
        if (!conn) {
            conn = fresh();
        }
        auto ex = conn->executor();
        auto r = co_await net::co_spawn(ex, exchange(std::move(conn), msg, deadline, reused),
                                        net::use_awaitable);
        if (r.retry_fresh) {
            // The server closed the idle connection before we noticed; not a Clerk failure.
            auto c2 = fresh();
            auto ex2 = c2->executor();
            r = co_await net::co_spawn(ex2, exchange(std::move(c2), msg, deadline, false),
                                       net::use_awaitable);
        }
        if (r.reusable) {
            give_back(std::move(r.reusable));
        }
        co_return std::move(r.reply);
    }

    void close_idle() override {
        std::vector<std::unique_ptr<connection>> drop;
        std::lock_guard lock(mu_);
        drop.swap(idle_);
    }

private:
    request_msg build(const clerk_http_request& req) const {
        using verb = http::verb;
        request_msg m{req.verb == clerk_http_request::method::post ? verb::post : verb::get,
                      base_path_ + req.path, 11};
        m.set(http::field::host, host_header_);
        m.set(http::field::authorization, "Bearer " + std::string(req.bearer));
        m.set("Clerk-API-Version", api_version_);
        m.set(http::field::content_type, "application/json");
        m.set(http::field::accept, "application/json");
        m.set(http::field::user_agent, "clerk-m2m-proxy/" CLERK_PROXY_VERSION);
        m.keep_alive(true);
        if (req.verb == clerk_http_request::method::post) {
            m.body() = req.body;
        }
        m.prepare_payload();
        return m;
    }

    std::unique_ptr<connection> fresh() {
        return std::make_unique<connection>(net::make_strand(exec_),
                                            tls_ctx_ ? &*tls_ctx_ : nullptr);
    }

    std::unique_ptr<connection> take_idle() {
        std::vector<std::unique_ptr<connection>> expired;  // destroyed outside the lock
        std::unique_ptr<connection> out;
        {
            std::lock_guard lock(mu_);
            auto now = steady::now();
            while (!idle_.empty()) {
                auto c = std::move(idle_.back());
                idle_.pop_back();
                if (now - c->idle_since < max_idle_age) {
                    out = std::move(c);
                    break;
                }
                expired.push_back(std::move(c));
            }
        }
        return out;
    }

    void give_back(std::unique_ptr<connection> c) {
        c->idle_since = steady::now();
        std::lock_guard lock(mu_);
        if (idle_.size() < max_idle_) {
            idle_.push_back(std::move(c));
        }
        // else: dropped (closed) as `c` leaves scope... after the lock; harmless either way.
    }

    /// Runs on the connection's strand: connect if needed, write, read one response.
    net::awaitable<exchange_result> exchange(std::unique_ptr<connection> c,
                                             std::shared_ptr<const request_msg> msg,
                                             steady::time_point deadline, bool reused) {
        exchange_result out;
        if (!c->connected) {
            if (auto err = co_await connect(*c, deadline); err != clerk_transport_error::none) {
                out.reply = transport_failure(err);
                co_return out;
            }
        }
        // Take the stream reference before `c` is moved into the parameter.
        if (c->tls) {
            auto& tls = *c->tls;
            co_return co_await talk(tls, std::move(c), *msg, deadline, reused);
        }
        auto& plain = *c->plain;
        co_return co_await talk(plain, std::move(c), *msg, deadline, reused);
    }

    net::awaitable<clerk_transport_error> connect(connection& c, steady::time_point deadline) {
        auto [rec, endpoints] = co_await resolve_until(host_, port_, deadline);
        if (rec) {
            co_return rec == beast::error::timeout ? clerk_transport_error::timeout
                                                   : clerk_transport_error::connect;
        }
        auto& sock = c.tcp();
        sock.expires_at(deadline);
        auto [cec, ep] = co_await sock.async_connect(endpoints, use_tuple);
        (void)ep;
        if (cec) {
            co_return cec == beast::error::timeout ? clerk_transport_error::timeout
                                                   : clerk_transport_error::connect;
        }
        boost::system::error_code nec;
        sock.socket().set_option(tcp::no_delay(true), nec);
        if (c.tls) {
            // SNI only for names (RFC 6066 forbids IP literals); host_name_verification checks
            // DNS names and IP addresses against the certificate's SANs.
            if (!host_is_ip_ && !SSL_set_tlsext_host_name(c.tls->native_handle(), host_.c_str())) {
                co_return clerk_transport_error::tls;
            }
            c.tls->set_verify_mode(ssl::verify_peer);
            c.tls->set_verify_callback(ssl::host_name_verification(host_));
            auto [hec] = co_await c.tls->async_handshake(ssl::stream_base::client, use_tuple);
            if (hec) {
                co_return hec == beast::error::timeout ? clerk_transport_error::timeout
                                                       : clerk_transport_error::tls;
            }
        }
        c.connected = true;
        co_return clerk_transport_error::none;
    }

    template <class Stream>
    net::awaitable<exchange_result> talk(Stream& stream, std::unique_ptr<connection> c,
                                         const request_msg& msg, steady::time_point deadline,
                                         bool reused) {
        exchange_result out;
        auto& sock = c->tcp();
        sock.expires_at(deadline);
        auto [wec, written] = co_await http::async_write(stream, msg, use_tuple);
        (void)written;
        if (wec) {
            out.reply =
                transport_failure(wec == beast::error::timeout ? clerk_transport_error::timeout
                                                               : clerk_transport_error::io);
            out.retry_fresh = reused && wec != beast::error::timeout;
            co_return out;
        }
        beast::flat_buffer buf;
        http::response_parser<http::string_body> parser;
        parser.header_limit(max_header_bytes);
        parser.body_limit(max_body_bytes);
        auto [rec, got] = co_await http::async_read(stream, buf, parser, use_tuple);
        (void)got;
        if (rec) {
            out.reply =
                transport_failure(rec == beast::error::timeout ? clerk_transport_error::timeout
                                                               : clerk_transport_error::io);
            out.retry_fresh = reused && !parser.got_some() && rec != beast::error::timeout;
            co_return out;
        }
        auto& res = parser.get();
        out.reply.status = static_cast<int>(res.result_int());
        if (auto it = res.find(http::field::retry_after); it != res.end()) {
            out.reply.retry_after = std::string(it->value());
        }
        bool keep = res.keep_alive();
        out.reply.body = std::move(res.body());
        if (keep) {
            sock.expires_never();
            out.reusable = std::move(c);
        }
        co_return out;
    }

    net::any_io_executor exec_;
    std::string host_;
    std::string port_;
    std::string host_header_;
    std::string base_path_;
    std::string api_version_;
    bool host_is_ip_ = false;
    bool broken_ = false;  ///< clerk.ca_file unusable: fail closed
    std::size_t max_idle_;
    std::optional<ssl::context> tls_ctx_;

    std::mutex mu_;
    std::vector<std::unique_ptr<connection>> idle_;
};

}  // namespace

std::shared_ptr<clerk_api> make_clerk_client(net::any_io_executor exec,
                                             const config::clerk_config& cfg,
                                             std::size_t max_idle) {
    return std::make_shared<clerk_client>(std::move(exec), cfg, max_idle);
}

}  // namespace clerk::proxy
