#include "proxy/auth/clerk_client.hpp"

#include "proxy/logging.hpp"
#include "proxy/net/any_stream.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <utility>

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
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

constexpr std::size_t max_body_bytes = 1 << 20;
constexpr std::uint32_t max_header_bytes = 16 * 1024;

using request_msg = http::request<http::string_body>;

clerk_http_reply transport_failure(clerk_transport_error e) {
    clerk_http_reply r;
    r.error = e;
    return r;
}

/// Clerk's API as a target of the proxy's one outbound connector (upstream_pool): resolve with
/// a deadline, connect, TLS with the system store plus clerk.ca_file, peer and host-name
/// verification, SNI, and the keep-alive pool.
config::upstream_config connector_settings(const config::clerk_config& cfg, std::size_t max_idle) {
    config::upstream_config u;
    u.scheme =
        cfg.api_url_is_https ? config::upstream_scheme::https : config::upstream_scheme::http;
    u.host = cfg.api_host;
    u.port = cfg.api_port;
    u.connect_timeout = cfg.timeout;  // each call's own deadline bounds it further
    u.max_idle_connections = max_idle;
    u.tls_verify = true;
    u.ca_file = cfg.ca_file;
    return u;
}

clerk_transport_error connect_failure(const error_code& ec) {
    if (ec == beast::error::timeout) {
        return clerk_transport_error::timeout;
    }
    if (ec.category() == net::error::get_ssl_category() ||
        ec.category() == net::ssl::error::get_stream_category()) {
        return clerk_transport_error::tls;  // certificate, host name, protocol, SNI
    }
    return clerk_transport_error::connect;
}

struct talk_result {
    clerk_http_reply reply;
    bool retry_fresh = false;  ///< closed before any response byte on a reused connection
};

/// Writes `msg` and reads one response by `deadline`; a connection that may be kept alive
/// goes back to `pool`.
task<talk_result> talk(upstream_pool& pool, std::unique_ptr<any_stream> s, const request_msg& msg,
                       steady::time_point deadline, bool reused) {
    talk_result out;
    s->expires_after(deadline - steady::now());
    auto [wec, written] = co_await http::async_write(*s, msg, use_task_tuple);
    (void)written;
    if (wec) {
        out.reply = transport_failure(wec == beast::error::timeout ? clerk_transport_error::timeout
                                                                   : clerk_transport_error::io);
        out.retry_fresh = reused && wec != beast::error::timeout;
        co_return out;
    }
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.header_limit(max_header_bytes);
    parser.body_limit(max_body_bytes);
    auto [rec, got] = co_await http::async_read(*s, buf, parser, use_task_tuple);
    (void)got;
    if (rec) {
        out.reply = transport_failure(rec == beast::error::timeout ? clerk_transport_error::timeout
                                                                   : clerk_transport_error::io);
        out.retry_fresh = reused && !parser.got_some() && rec != beast::error::timeout;
        co_return out;
    }
    auto& res = parser.get();
    out.reply.status = static_cast<int>(res.result_int());
    if (auto it = res.find(http::field::retry_after); it != res.end()) {
        out.reply.retry_after = std::string(it->value());
    }
    const bool keep = res.keep_alive();
    out.reply.body = std::move(res.body());
    if (keep && buf.size() == 0) {
        pool.release(std::move(s));  // nothing unread: the next exchange starts clean
    }
    co_return out;
}

/// One exchange on the pool's event loop: an idle connection or a new one, then one retry on
/// a fresh connection when a reused one turns out closed (not a Clerk failure).
task<clerk_http_reply> exchange(std::shared_ptr<upstream_pool> pool,
                                std::shared_ptr<const request_msg> msg,
                                steady::time_point deadline) {
    upstream_pool::connection c;
    if (!pool->take_idle(c)) {
        if (auto ec = co_await pool->connect_until(c, deadline); ec) {
            co_return transport_failure(connect_failure(ec));
        }
    }
    const bool reused = c.reused;
    auto r = co_await talk(*pool, std::move(c.stream), *msg, deadline, reused);
    if (r.retry_fresh) {
        upstream_pool::connection again;
        if (auto ec = co_await pool->connect_until(again, deadline); ec) {
            co_return transport_failure(connect_failure(ec));
        }
        r = co_await talk(*pool, std::move(again.stream), *msg, deadline, false);
    }
    co_return std::move(r.reply);
}

class clerk_client final : public clerk_api {
public:
    clerk_client(net::any_io_executor exec, const config::clerk_config& cfg, std::size_t max_idle)
        : exec_(std::move(exec)), base_path_(cfg.api_base_path), api_version_(cfg.api_version) {
        // Appended piecewise: GCC 12 warns (falsely) on "[" + std::string + "]" here.
        const bool v6 = cfg.api_host.find(':') != std::string::npos;
        if (v6) {
            host_header_ += '[';
        }
        host_header_ += cfg.api_host;
        if (v6) {
            host_header_ += ']';
        }
        if (cfg.api_port != (cfg.api_url_is_https ? 443 : 80)) {
            host_header_ += ':';
            host_header_ += std::to_string(cfg.api_port);
        }
        std::string error;
        pool_ =
            upstream_pool::create(exec_, connector_settings(cfg, max_idle), error, "clerk.ca_file");
        if (!pool_) {
            // The config loader checked the bundle (config/values.cpp ca_file_problem); a file
            // changed since fails closed (every call is a TLS failure, so 503) rather than
            // trusting less or more than configured.
            get_logger("clerk")->error("{}; Clerk calls will fail", error);
        }
    }

    net::awaitable<clerk_http_reply> call(clerk_http_request req,
                                          steady::time_point deadline) override {
        if (!pool_) {
            co_return transport_failure(clerk_transport_error::tls);
        }
        if (steady::now() >= deadline) {
            co_return transport_failure(clerk_transport_error::timeout);
        }
        auto msg = std::make_shared<const request_msg>(build(req));
        // The pool's sockets live on its event loop: the exchange runs there. The executor is
        // fetched into a local first (GCC 12 may destroy a co_await temporary twice).
        const auto loop = loop_of(exec_);
        co_return co_await net::co_spawn(loop, exchange(pool_, std::move(msg), deadline),
                                         net::use_awaitable);
    }

    void close_idle() override {
        if (pool_) {
            pool_->close_idle();
        }
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

    net::any_io_executor exec_;
    std::string host_header_;
    std::string base_path_;
    std::string api_version_;
    std::shared_ptr<upstream_pool> pool_;  ///< nullptr: clerk.ca_file unusable, fail closed
};

}  // namespace

std::shared_ptr<clerk_api> make_clerk_client(net::any_io_executor exec,
                                             const config::clerk_config& cfg,
                                             std::size_t max_idle) {
    return std::make_shared<clerk_client>(std::move(exec), cfg, max_idle);
}

}  // namespace clerk::proxy
