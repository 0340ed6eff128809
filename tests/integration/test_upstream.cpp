// The recording upstream of harness.hpp: an in-process Beast server on its own thread.
#include "harness.hpp"
#include "sha256_stream.hpp"

#include "proxy/net/any_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include <openssl/evp.h>

#include <atomic>

namespace clerk::it {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using proxy::any_stream;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

namespace {

/// Bound of one read or write: a stalled peer is given up on, a slow but moving one never is.
constexpr std::chrono::seconds io_timeout{60};

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

}  // namespace

void fill_pattern(char* data, std::size_t n, std::uint64_t offset) {
    for (std::size_t i = 0; i < n; ++i) {
        data[i] = static_cast<char>(((offset + i) * 7 + 3) % 251);
    }
}

std::string pattern_sha256(std::uint64_t size) {
    sha256_stream h;
    std::vector<char> buf(64 * 1024);
    for (std::uint64_t off = 0; off < size; off += buf.size()) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
        fill_pattern(buf.data(), n, off);
        h.update(buf.data(), n);
    }
    return h.hex();
}

std::string sha256_hex(std::string_view data) {
    sha256_stream h;
    h.update(data.data(), data.size());
    return h.hex();
}

std::string recorded_request::header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
        if (lower(k) == lower(name)) {
            return v;
        }
    }
    return {};
}

std::size_t recorded_request::count(std::string_view name) const {
    std::size_t n = 0;
    for (const auto& [k, v] : headers) {
        n += lower(k) == lower(name) ? 1 : 0;
    }
    return n;
}

struct recording_upstream::impl {
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    std::shared_ptr<net::ssl::context> tls;
    std::thread thread;
    mutable std::mutex mu;
    mutable std::condition_variable cv;
    std::vector<recorded_request> reqs;
    std::function<upstream_behaviour(const recorded_request&)> handler =
        [](const recorded_request&) { return upstream_behaviour{}; };
    std::atomic<std::uint64_t> conns{0};
    std::atomic<std::uint64_t> heads{0};

    net::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
            if (ec) {
                co_return;
            }
            const auto id = ++conns;
            net::co_spawn(ioc, serve(std::move(socket), id), net::detached);
        }
    }

    net::awaitable<bool> write_body(any_stream& s, http::response<http::buffer_body>& res,
                                    http::response_serializer<http::buffer_body>& sr,
                                    const upstream_behaviour& b) {
        std::vector<char> chunk(64 * 1024);
        if (b.generated_bytes > 0) {
            for (std::uint64_t off = 0; off < b.generated_bytes; off += chunk.size()) {
                const auto n = static_cast<std::size_t>(
                    std::min<std::uint64_t>(chunk.size(), b.generated_bytes - off));
                fill_pattern(chunk.data(), n, off);
                res.body().data = chunk.data();
                res.body().size = n;
                res.body().more = true;
                // A deadline per chunk (progress), not one for the whole body: 64 MiB through
                // sanitizer builds on a loaded machine can take longer than any fixed total.
                s.expires_after(io_timeout);
                auto [ec, w] = co_await http::async_write(s, sr, use_tuple);
                if (ec && ec != http::error::need_buffer) {
                    co_return false;
                }
            }
        } else if (!b.body.empty()) {
            std::string copy = b.body;
            res.body().data = copy.data();
            res.body().size = copy.size();
            res.body().more = true;
            auto [ec, w] = co_await http::async_write(s, sr, use_tuple);
            if (ec && ec != http::error::need_buffer) {
                co_return false;
            }
        }
        res.body().data = nullptr;
        res.body().size = 0;
        res.body().more = false;
        s.expires_after(io_timeout);
        auto [ec, w] = co_await http::async_write(s, sr, use_tuple);
        co_return !ec;
    }

    net::awaitable<void> serve(tcp::socket socket, std::uint64_t conn_id) {
        std::unique_ptr<any_stream> s;
        if (tls) {
            s = std::make_unique<any_stream>(std::in_place_type<any_stream::tls_stream>,
                                             std::move(socket), *tls);
            s->expires_after(std::chrono::seconds(10));
            auto [ec] =
                co_await s->tls()->async_handshake(net::ssl::stream_base::server, use_tuple);
            if (ec) {
                co_return;
            }
        } else {
            s = std::make_unique<any_stream>(std::in_place_type<any_stream::tcp_stream>,
                                             std::move(socket));
        }
        beast::flat_buffer buffer;
        std::vector<char> chunk(64 * 1024);
        for (;;) {
            http::request_parser<http::buffer_body> p;
            p.body_limit(boost::none);
            p.header_limit(1024 * 1024);
            s->expires_after(io_timeout);
            auto [ec, n] = co_await http::async_read_header(*s, buffer, p, use_tuple);
            if (ec) {
                break;
            }
            ++heads;
            recorded_request r;
            r.method = std::string(p.get().method_string());
            r.target = std::string(p.get().target());
            for (const auto& f : p.get()) {
                r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
            }
            r.connection = conn_id;
            r.chunked = p.chunked();
            upstream_behaviour b;
            {
                std::lock_guard lock(mu);
                b = handler(r);
            }
            if (beast::iequals(p.get()[http::field::expect], "100-continue") && b.send_continue) {
                static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
                co_await net::async_write(*s, net::buffer(cont), use_tuple);
            }
            sha256_stream h;
            bool body_ok = true;
            while (!p.is_done()) {
                p.get().body().data = chunk.data();
                p.get().body().size = chunk.size();
                s->expires_after(io_timeout);  // per read: progress, not a total
                auto [rec, rn] = co_await http::async_read_some(*s, buffer, p, use_tuple);
                if (rec && rec != http::error::need_buffer) {
                    body_ok = false;
                    break;
                }
                const auto got = chunk.size() - p.get().body().size;
                h.update(chunk.data(), got);
                r.body_size += got;
            }
            r.body_sha256 = h.hex();
            {
                std::lock_guard lock(mu);
                reqs.push_back(r);
            }
            cv.notify_all();
            if (!body_ok || b.close_without_response) {
                break;
            }
            if (b.delay.count() > 0) {
                const auto executor = co_await net::this_coro::executor;
                net::steady_timer t(executor, b.delay);
                co_await t.async_wait(use_tuple);
            }
            http::response<http::buffer_body> res{static_cast<http::status>(b.status), 11};
            for (const auto& [k, v] : b.headers) {
                res.insert(k, v);
            }
            const bool keep = p.keep_alive() && !b.connection_close;
            res.keep_alive(keep);
            const std::uint64_t size = b.generated_bytes > 0 ? b.generated_bytes : b.body.size();
            if (b.chunked) {
                res.chunked(true);
            } else if (b.status != 204 && b.status != 304) {
                res.content_length(size);
            }
            http::response_serializer<http::buffer_body> sr{res};
            s->expires_after(io_timeout);
            auto [wec, wn] = co_await http::async_write_header(*s, sr, use_tuple);
            if (wec) {
                break;
            }
            const bool no_body = r.method == "HEAD" || b.status == 204 || b.status == 304;
            if (!no_body && !co_await write_body(*s, res, sr, b)) {
                break;
            }
            if (!keep) {
                break;
            }
        }
        s->close();
    }
};

recording_upstream::recording_upstream() : recording_upstream(options{}) {}

recording_upstream::recording_upstream(const options& opts) : impl_(std::make_unique<impl>()) {
    if (!opts.tls_cert_file.empty()) {
        impl_->tls = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
        impl_->tls->use_certificate_chain_file(opts.tls_cert_file);
        impl_->tls->use_private_key_file(opts.tls_key_file, net::ssl::context::pem);
    }
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
    impl_->acceptor.open(ep.protocol());
    impl_->acceptor.set_option(net::socket_base::reuse_address(true));
    impl_->acceptor.bind(ep);
    impl_->acceptor.listen();
    net::co_spawn(impl_->ioc, impl_->accept_loop(), net::detached);
    impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

recording_upstream::~recording_upstream() {
    impl_->ioc.stop();
    impl_->thread.join();
}

std::uint16_t recording_upstream::port() const {
    return impl_->acceptor.local_endpoint().port();
}

std::string recording_upstream::url() const {
    return std::string(impl_->tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port());
}

void recording_upstream::set_handler(std::function<upstream_behaviour(const recorded_request&)> h) {
    std::lock_guard lock(impl_->mu);
    impl_->handler = std::move(h);
}

void recording_upstream::set_behaviour(upstream_behaviour b) {
    set_handler([b](const recorded_request&) { return b; });
}

std::vector<recorded_request> recording_upstream::requests() const {
    std::lock_guard lock(impl_->mu);
    return impl_->reqs;
}

bool recording_upstream::wait_for_requests(std::size_t n, duration timeout) const {
    std::unique_lock lock(impl_->mu);
    return impl_->cv.wait_for(lock, timeout, [&] { return impl_->reqs.size() >= n; });
}

std::uint64_t recording_upstream::connections_accepted() const {
    return impl_->conns.load();
}
std::uint64_t recording_upstream::heads_received() const {
    return impl_->heads.load();
}

}  // namespace clerk::it
