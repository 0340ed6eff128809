// The blocking test client of harness.hpp: Beast on a private io_context; every operation runs
// the context until it completes, bounded by the stream's own deadline.
#include "harness.hpp"
#include "sha256_stream.hpp"

#include "proxy/net/any_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <chrono>
#include <future>
#include <stdexcept>

namespace clerk::it {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;
using proxy::any_stream;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

void fail(const std::string& what, const error_code& ec) {
    throw std::runtime_error(what + ": " + ec.message());
}

}  // namespace

std::string http_response::header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
        if (lower(k) == lower(name)) {
            return v;
        }
    }
    return {};
}

std::size_t http_response::count(std::string_view name) const {
    std::size_t n = 0;
    for (const auto& [k, v] : headers) {
        n += lower(k) == lower(name) ? 1 : 0;
    }
    return n;
}

struct http_client::impl {
    net::io_context ioc;
    std::shared_ptr<net::ssl::context> ctx;
    std::unique_ptr<any_stream> stream;
    beast::flat_buffer buffer;
    http_client::options opts;
    std::uint16_t port = 0;

    template <class T>
    T run(net::awaitable<T> a) {
        auto fut = net::co_spawn(ioc, std::move(a), net::use_future);
        ioc.restart();
        // Until this operation is done, not until the context runs out of work: the stream's
        // deadline timer (proxy/net/deadline_stream.hpp) may stay armed between operations.
        while (fut.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
            if (ioc.run_one() == 0) {
                break;  // out of work: fut.get() reports what happened
            }
        }
        return fut.get();
    }

    net::awaitable<void> connect() {
        if (opts.tls) {
            stream = std::make_unique<any_stream>(std::in_place_type<any_stream::tls_stream>,
                                                  ioc.get_executor(), *ctx);
        } else {
            stream = std::make_unique<any_stream>(std::in_place_type<any_stream::tcp_stream>,
                                                  ioc.get_executor());
        }
        auto& tcp_layer = stream->tls() ? beast::get_lowest_layer(*stream->tls()) : *stream->tcp();
        tcp_layer.expires_after(opts.timeout);
        auto [ec] = co_await tcp_layer.async_connect(
            tcp::endpoint(net::ip::make_address("127.0.0.1"), port), use_tuple);
        if (ec) {
            fail("connect", ec);
        }
        if (auto* t = stream->tls()) {
            const std::string name = opts.server_name.empty() ? "localhost" : opts.server_name;
            SSL_set_tlsext_host_name(t->native_handle(), name.c_str());
            t->set_verify_callback(net::ssl::host_name_verification(name));
            auto [hec] = co_await t->async_handshake(net::ssl::stream_base::client, use_tuple);
            if (hec) {
                fail("tls handshake", hec);
            }
        }
    }

    net::awaitable<http_response> read(bool head, bool keep_body) {
        std::optional<http::response_parser<http::buffer_body>> parser;
        stream->expires_after(opts.timeout);
        for (;;) {  // interim 100 responses are skipped
            parser.emplace();
            parser->body_limit(boost::none);
            parser->header_limit(1024 * 1024);
            if (head) {
                parser->skip(true);
            }
            auto [ec, n] = co_await http::async_read_header(*stream, buffer, *parser, use_tuple);
            if (ec) {
                fail("read response head", ec);
            }
            if (parser->get().result_int() != 100) {
                break;
            }
        }
        auto& p = *parser;
        http_response r;
        r.status = p.get().result_int();
        for (const auto& f : p.get()) {
            r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        }
        r.keep_alive = p.keep_alive();
        sha256_stream h;
        std::vector<char> chunk(64 * 1024);
        while (!p.is_done()) {
            p.get().body().data = chunk.data();
            p.get().body().size = chunk.size();
            stream->expires_after(opts.timeout);
            auto [ec, n] = co_await http::async_read_some(*stream, buffer, p, use_tuple);
            if (ec && ec != http::error::need_buffer) {
                fail("read response body", ec);
            }
            const auto got = chunk.size() - p.get().body().size;
            h.update(chunk.data(), got);
            r.body_size += got;
            if (keep_body) {
                r.body.append(chunk.data(), got);
            }
        }
        r.body_sha256 = h.hex();
        co_return r;
    }

    net::awaitable<http_response> send(http::request<http::string_body> req, bool keep_body) {
        const bool head = req.method() == http::verb::head;
        stream->expires_after(opts.timeout);
        auto [ec, n] = co_await http::async_write(*stream, req, use_tuple);
        if (ec) {
            fail("write request", ec);
        }
        co_return co_await read(head, keep_body);
    }

    net::awaitable<http_response> upload(http::request<http::buffer_body> req, std::uint64_t size,
                                         std::string* sha) {
        http::request_serializer<http::buffer_body> sr{req};
        stream->expires_after(opts.timeout);
        auto [ec, n] = co_await http::async_write_header(*stream, sr, use_tuple);
        if (ec) {
            fail("write request head", ec);
        }
        sha256_stream h;
        std::vector<char> chunk(256 * 1024);
        for (std::uint64_t off = 0; off < size; off += chunk.size()) {
            const auto len =
                static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), size - off));
            fill_pattern(chunk.data(), len, off);
            h.update(chunk.data(), len);
            req.body().data = chunk.data();
            req.body().size = len;
            req.body().more = true;
            stream->expires_after(opts.timeout);
            auto [wec, wn] = co_await http::async_write(*stream, sr, use_tuple);
            if (wec && wec != http::error::need_buffer) {
                fail("write request body", wec);
            }
        }
        req.body().data = nullptr;
        req.body().size = 0;
        req.body().more = false;
        auto [fec, fn] = co_await http::async_write(*stream, sr, use_tuple);
        if (fec) {
            fail("finish request body", fec);
        }
        if (sha != nullptr) {
            *sha = h.hex();
        }
        co_return co_await read(false, false);
    }
};

http_client::http_client(std::uint16_t port) : http_client(port, options{}) {}

http_client::http_client(std::uint16_t port, const options& opts)
    : impl_(std::make_unique<impl>()) {
    impl_->opts = opts;
    impl_->port = port;
    if (opts.tls) {
        impl_->ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
        if (!opts.ca_file.empty()) {
            impl_->ctx->load_verify_file(opts.ca_file);
        }
        impl_->ctx->set_verify_mode(net::ssl::verify_peer);
    }
    impl_->run(impl_->connect());
}

http_client::~http_client() = default;

namespace {

template <class Body>
void apply_headers(http::request<Body>& req, const http_client::header_list& headers,
                   std::uint16_t port) {
    bool host = false;
    for (const auto& [k, v] : headers) {
        if (beast::iequals(k, "host")) {
            host = true;
            if (v.empty()) {
                continue;  // {"Host", ""}: send no Host at all
            }
        }
        req.insert(k, v);
    }
    if (!host) {
        req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    }
}

}  // namespace

http_response http_client::request(const std::string& method, const std::string& target,
                                   const header_list& headers, const std::string& body) {
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    apply_headers(req, headers, impl_->port);
    req.body() = body;
    if (!body.empty() || method == "POST" || method == "PUT") {
        req.prepare_payload();
    }
    return impl_->run(impl_->send(std::move(req), true));
}

http_response http_client::download(const std::string& target, const header_list& headers) {
    http::request<http::string_body> req{http::verb::get, target, 11};
    apply_headers(req, headers, impl_->port);
    return impl_->run(impl_->send(std::move(req), false));
}

http_response http_client::upload(const std::string& method, const std::string& target,
                                  std::uint64_t size, bool chunked, const header_list& headers,
                                  std::string* sha256_out) {
    http::request<http::buffer_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    apply_headers(req, headers, impl_->port);
    if (chunked) {
        req.chunked(true);
    } else {
        req.content_length(size);
    }
    return impl_->run(impl_->upload(std::move(req), size, sha256_out));
}

void http_client::send_raw(const std::string& bytes) {
    impl_->run([](impl& i, std::string data) -> net::awaitable<void> {
        i.stream->expires_after(i.opts.timeout);
        auto [ec, n] = co_await net::async_write(*i.stream, net::buffer(data), use_tuple);
        if (ec) {
            fail("send_raw", ec);
        }
    }(*impl_, bytes));
}

http_response http_client::read_response(bool head_request) {
    return impl_->run(impl_->read(head_request, true));
}

std::string http_client::read_until_close() {
    return impl_->run([](impl& i) -> net::awaitable<std::string> {
        std::string out(static_cast<const char*>(i.buffer.data().data()), i.buffer.size());
        i.buffer.consume(i.buffer.size());
        std::array<char, 8192> chunk{};
        i.stream->expires_after(i.opts.timeout);
        for (;;) {
            auto [ec, n] = co_await i.stream->async_read_some(net::buffer(chunk), use_tuple);
            out.append(chunk.data(), n);
            if (ec == beast::error::timeout) {
                fail("read_until_close", ec);
            }
            if (ec) {
                co_return out;
            }
        }
    }(*impl_));
}

std::string http_client::read_interim() {
    return impl_->run([](impl& i) -> net::awaitable<std::string> {
        i.stream->expires_after(i.opts.timeout);
        for (;;) {
            const std::string_view have(static_cast<const char*>(i.buffer.data().data()),
                                        i.buffer.size());
            if (const auto end = have.find("\r\n\r\n"); end != std::string_view::npos) {
                std::string head(have.substr(0, end + 4));
                i.buffer.consume(end + 4);
                co_return head;
            }
            auto [ec, n] = co_await i.stream->async_read_some(i.buffer.prepare(4096), use_tuple);
            if (ec) {
                fail("read_interim", ec);
            }
            i.buffer.commit(n);
        }
    }(*impl_));
}

bool http_client::closed_by_peer() {
    try {
        read_until_close();
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace clerk::it
