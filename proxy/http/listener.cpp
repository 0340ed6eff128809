#include "proxy/http/listener.hpp"

#include "proxy/logging.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>

#include <cerrno>

namespace clerk::proxy {
namespace {

using boost::system::error_code;
using tcp = net::ip::tcp;

}  // namespace

std::string to_string(const tcp::endpoint& ep) {
    const auto addr = ep.address();
    const std::string host = addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string();
    return host + ":" + std::to_string(ep.port());
}

std::unique_ptr<listener> listener::bind(net::any_io_executor exec,
                                         const config::listen_address& addr, std::string& error,
                                         bool reuse_port) {
    const auto fail = [&](const error_code& ec) {
        error = "cannot listen on " + addr.text + ": " + ec.message();
        return nullptr;
    };
    error_code ec;
    tcp::endpoint ep;
    const auto ip = net::ip::make_address(addr.host, ec);
    if (!ec) {
        ep = tcp::endpoint(ip, addr.port);
    } else {
        // A host name ("localhost"): the first address it resolves to.
        tcp::resolver resolver(exec);
        const auto results = resolver.resolve(addr.host, std::to_string(addr.port), ec);
        if (ec || results.empty()) {
            return fail(ec ? ec : net::error::host_not_found);
        }
        ep = results.begin()->endpoint();
    }
    tcp::acceptor acceptor(exec);
    acceptor.open(ep.protocol(), ec);
    if (ec) {
        return fail(ec);
    }
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (reuse_port) {
        const int on = 1;
        if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
            return fail(error_code(errno, boost::system::system_category()));
        }
    }
    acceptor.bind(ep, ec);
    if (ec) {
        return fail(ec);
    }
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
        return fail(ec);
    }
    return std::make_unique<listener>(std::move(exec), std::move(acceptor));
}

listener::listener(net::any_io_executor exec, tcp::acceptor acceptor)
    : exec_(std::move(exec)),
      acceptor_(std::move(acceptor)),
      endpoint_(acceptor_.local_endpoint()) {}

net::awaitable<void> listener::run(accept_handler on_accept) {
    auto log = get_logger("listener");
    auto last_warning = std::chrono::steady_clock::time_point{};
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
        if (ec == net::error::operation_aborted || !acceptor_.is_open()) {
            co_return;
        }
        if (ec) {
            // Out of descriptors or a connection reset before accept: pause instead of spinning,
            // and say so at most once a second.
            const auto now = std::chrono::steady_clock::now();
            if (now - last_warning > std::chrono::seconds(1)) {
                log->warn("accept on {} failed: {}", to_string(endpoint_), ec.message());
                last_warning = now;
            }
            const auto executor = co_await net::this_coro::executor;
            net::steady_timer pause(executor, std::chrono::milliseconds(50));
            co_await pause.async_wait(use_tuple);
            continue;
        }
        // A response leaves as a head write and a body write: without TCP_NODELAY, Nagle holds
        // the second one until the client's delayed ACK (about 40 ms on Linux).
        error_code nodelay_ec;
        socket.set_option(net::ip::tcp::no_delay(true), nodelay_ec);
        on_accept(std::move(socket));
    }
}

void listener::close() {
    net::post(acceptor_.get_executor(), [this] {
        error_code ec;
        acceptor_.close(ec);
    });
}

}  // namespace clerk::proxy
