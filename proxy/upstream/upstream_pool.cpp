#include "proxy/upstream/upstream_pool.hpp"

#include "proxy/logging.hpp"
#include "proxy/net/any_stream.hpp"
#include "proxy/net/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <tuple>

namespace clerk::proxy {
namespace {

using boost::system::error_code;
using tcp = net::ip::tcp;

/// Idle connections older than this are not reused: upstream servers close idle keep-alive
/// connections after a few seconds to minutes, and a connection closed while we pick it costs a
/// retry. The peek in looks_alive() catches the ones already closed.
constexpr auto max_idle_age = std::chrono::seconds(30);

/// A connection released this recently is reused without the MSG_PEEK probe when a closed one
/// would only cost a retry: upstreams keep idle connections open for seconds at least.
constexpr auto probe_free_age = std::chrono::seconds(1);

/// A pooled connection must have nothing to read: EOF means the peer closed it, and unexpected
/// bytes (or a TLS alert) mean its state is unknown. MSG_PEEK leaves the stream untouched.
bool looks_alive(any_stream& s) {
    if (!s.is_open()) {
        return false;
    }
    const int fd = s.native_handle();
    if (fd < 0) {
        return true;  // an in-memory stream (tests): nothing to probe
    }
    char c = 0;
    const auto n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::shared_ptr<upstream_pool> upstream_pool::create(net::any_io_executor exec,
                                                     const config::upstream_config& cfg,
                                                     std::string& error, std::string_view ca_key) {
    std::shared_ptr<net::ssl::context> tls;
    if (cfg.scheme == config::upstream_scheme::https) {
        tls = make_upstream_tls_context(cfg, error, ca_key);
        if (!tls) {
            return nullptr;
        }
    }
    return std::make_shared<upstream_pool>(std::move(exec), cfg, std::move(tls));
}

upstream_pool::upstream_pool(net::any_io_executor exec, const config::upstream_config& cfg,
                             std::shared_ptr<net::ssl::context> tls)
    : exec_(std::move(exec)), cfg_(cfg), tls_(std::move(tls)) {}

upstream_pool::~upstream_pool() = default;

bool upstream_pool::serves(const config::upstream_config& c) const {
    return c.url == cfg_.url && c.scheme == cfg_.scheme && c.host == cfg_.host &&
           c.port == cfg_.port && c.unix_path == cfg_.unix_path &&
           c.connect_timeout == cfg_.connect_timeout &&
           c.max_idle_connections == cfg_.max_idle_connections && c.tls_verify == cfg_.tls_verify &&
           c.ca_file == cfg_.ca_file && c.protocol == cfg_.protocol;
}

task<error_code> upstream_pool::acquire(connection& out, bool fresh, bool can_retry) {
    if (!fresh && take_idle(out, can_retry)) {
        co_return error_code{};
    }
    co_return co_await connect(out);
}

bool upstream_pool::take_idle(connection& out, bool can_retry) {
    out = {};
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    while (!idle_.empty()) {
        idle_entry e = std::move(idle_.back());
        idle_.pop_back();
        const auto age = now - e.since;
        const bool trusted = can_retry && age < probe_free_age;
        if (age < max_idle_age && (trusted || looks_alive(*e.stream))) {
            out.stream = std::move(e.stream);
            out.reused = true;
            return true;
        }
        e.stream->close();
    }
    return false;
}

task<error_code> upstream_pool::connect(connection& out) {
    co_return co_await connect_until(out, std::chrono::steady_clock::now() + cfg_.connect_timeout);
}

task<error_code> upstream_pool::connect_until(connection& out,
                                              std::chrono::steady_clock::time_point deadline) {
    using namespace net::experimental::awaitable_operators;
    out = {};
    if (connector_) {
        co_return connector_(out);
    }

    if (cfg_.scheme == config::upstream_scheme::unix_socket) {
        auto s = std::make_unique<any_stream>(std::in_place_type<any_stream::unix_stream>,
                                              loop_of(exec_));
        auto& u = *s->unix_socket();
        u.expires_at(deadline);
        // use_task_tuple, not deferred: deadline_stream's connect carries a shared_ptr argument
        // (once per connection).
        auto [ec] = co_await u.async_connect(net::local::stream_protocol::endpoint(cfg_.unix_path),
                                             use_task_tuple);
        if (ec) {
            co_return ec;
        }
        u.expires_never();
        out.stream = std::move(s);
        co_return error_code{};
    }

    // Resolve (an IP literal needs no lookup). getaddrinfo cannot be interrupted, so a slow
    // lookup is raced with the connect deadline.
    std::vector<tcp::endpoint> endpoints;
    error_code addr_ec;
    const auto addr = net::ip::make_address(cfg_.host, addr_ec);
    if (!addr_ec) {
        endpoints.emplace_back(addr, cfg_.port);
    } else {
        tcp::resolver resolver(exec_);
        net::steady_timer timer(exec_, deadline);
        auto r = co_await (
            resolver.async_resolve(cfg_.host, std::to_string(cfg_.port), use_task_tuple) ||
            timer.async_wait(use_task_tuple));
        if (r.index() == 1) {
            co_return beast::error::timeout;
        }
        auto [ec, results] = std::get<0>(std::move(r));
        if (ec) {
            co_return ec;
        }
        for (const auto& entry : results) {
            endpoints.push_back(entry.endpoint());
        }
    }

    std::unique_ptr<any_stream> s;
    if (tls_) {
        s = std::make_unique<any_stream>(std::in_place_type<any_stream::tls_stream>, loop_of(exec_),
                                         *tls_);
    } else {
        s = std::make_unique<any_stream>(std::in_place_type<any_stream::tcp_stream>,
                                         loop_of(exec_));
    }
    auto& tcp_layer = s->tls() ? beast::get_lowest_layer(*s->tls()) : *s->tcp();
    tcp_layer.expires_at(deadline);
    // Each address in turn, all within the one connect deadline.
    error_code ec = net::error::host_not_found;
    for (const auto& ep : endpoints) {
        if (tcp_layer.socket().is_open()) {
            tcp_layer.close();
        }
        std::tie(ec) = co_await tcp_layer.async_connect(ep, use_task_tuple);
        if (!ec || ec == beast::error::timeout) {
            break;
        }
    }
    if (ec) {
        co_return ec;
    }
    tcp_layer.socket().set_option(tcp::no_delay(true), ec);

    if (auto* t = s->tls()) {
        // SNI only for names (RFC 6066 forbids IP literals); host-name verification covers both
        // (asio's host_name_verification checks IP SANs for an address).
        if (addr_ec && !SSL_set_tlsext_host_name(t->native_handle(), cfg_.host.c_str())) {
            co_return error_code(static_cast<int>(::ERR_get_error()),
                                 net::error::get_ssl_category());
        }
        if (cfg_.tls_verify) {
            t->set_verify_callback(net::ssl::host_name_verification(cfg_.host));
        }
        auto [hec] = co_await t->async_handshake(net::ssl::stream_base::client, use_task_tuple);
        if (hec) {
            co_return hec;
        }
    }
    tcp_layer.expires_never();
    out.stream = std::move(s);
    co_return error_code{};
}

void upstream_pool::release(std::unique_ptr<any_stream> s) {
    if (!s || !s->is_open()) {
        return;
    }
    s->expires_never();
    std::unique_ptr<any_stream> evicted;
    {
        std::lock_guard lock(mu_);
        if (cfg_.max_idle_connections == 0) {
            evicted = std::move(s);
        } else {
            idle_.push_back({std::move(s), std::chrono::steady_clock::now()});
            if (idle_.size() > cfg_.max_idle_connections) {
                evicted = std::move(idle_.front().stream);
                idle_.pop_front();
            }
        }
    }
    if (evicted) {
        evicted->close();
    }
}

void upstream_pool::close_idle() {
    retire_h2();
    std::deque<idle_entry> victims;
    {
        std::lock_guard lock(mu_);
        victims.swap(idle_);
    }
    for (auto& e : victims) {
        e.stream->close();
    }
}

}  // namespace clerk::proxy
