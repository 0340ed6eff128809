// proxy/net/deadline_stream.hpp: the lazily re-armed deadline keeps Beast's basic_stream timeout
// semantics. A connected socket pair on loopback, one io_context, deadlines of tens of ms;
// every wait is bounded by the context's own run_for, never a sleep.
#include "proxy/net/deadline_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <future>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;
using clerk::proxy::deadline_stream;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

struct pair_fixture {
    net::io_context ioc{1};
    tcp::acceptor acceptor{ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
    tcp::socket peer{ioc};
    deadline_stream<tcp> stream{ioc.get_executor()};

    pair_fixture() {
        acceptor.async_accept(peer, [](error_code) {});
        REQUIRE_FALSE(run(connect()));
        for (int i = 0; i < 50 && !peer.is_open(); ++i) {
            spin(10ms);  // the accept's completion
        }
        REQUIRE(peer.is_open());
    }
    /// Runs the context for `d` (a context that ran out of work is restarted first).
    void spin(std::chrono::milliseconds d) {
        ioc.restart();
        ioc.run_for(d);
    }
    net::awaitable<error_code> connect() {
        auto [ec] = co_await stream.async_connect(acceptor.local_endpoint(), use_tuple);
        co_return ec;
    }
    /// Runs `a` to completion (at most 5 s of the context's time).
    template <class T>
    T run(net::awaitable<T> a) {
        auto fut = net::co_spawn(ioc, std::move(a), net::use_future);
        ioc.restart();
        const auto until = steady::now() + 5s;
        while (fut.wait_for(0s) != std::future_status::ready && steady::now() < until) {
            ioc.run_one_for(100ms);
        }
        REQUIRE(fut.wait_for(0s) == std::future_status::ready);
        return fut.get();
    }
    net::awaitable<error_code> read_one() {
        char c = 0;
        auto [ec, n] = co_await stream.async_read_some(net::buffer(&c, 1), use_tuple);
        co_return ec;
    }
};

}  // namespace

TEST_CASE("deadline_stream: a read pending at the deadline fails with timeout, not before",
          "[deadline_stream]") {
    pair_fixture f;
    const auto t0 = steady::now();
    f.stream.expires_after(80ms);
    const auto ec = f.run(f.read_one());
    const auto took = steady::now() - t0;
    CHECK(ec == boost::beast::error::timeout);
    CHECK(took >= 80ms);
    CHECK_FALSE(f.stream.socket().is_open());
}

TEST_CASE("deadline_stream: data before the deadline completes the read", "[deadline_stream]") {
    pair_fixture f;
    f.stream.expires_after(2s);
    net::write(f.peer, net::buffer("x", 1));
    CHECK_FALSE(f.run(f.read_one()));
    CHECK(f.stream.socket().is_open());
}

TEST_CASE("deadline_stream: a deadline moved later is honoured, not the armed one",
          "[deadline_stream]") {
    pair_fixture f;
    f.stream.expires_after(50ms);  // arms the timer for +50 ms
    const auto t0 = steady::now();
    f.stream.expires_after(300ms);  // later: the timer wakes at +50 ms and re-arms
    const auto ec = f.run(f.read_one());
    CHECK(ec == boost::beast::error::timeout);
    CHECK(steady::now() - t0 >= 300ms);
}

TEST_CASE("deadline_stream: a deadline moved earlier re-arms the timer", "[deadline_stream]") {
    pair_fixture f;
    f.stream.expires_after(10s);
    const auto t0 = steady::now();
    f.stream.expires_after(60ms);
    const auto ec = f.run(f.read_one());
    CHECK(ec == boost::beast::error::timeout);
    CHECK(steady::now() - t0 < 5s);
}

TEST_CASE("deadline_stream: no deadline, no timeout; expires_never disarms a pending deadline",
          "[deadline_stream]") {
    pair_fixture f;
    f.stream.expires_after(50ms);
    f.stream.expires_never();
    // The armed timer fires at +50 ms and finds no deadline: the read stays pending until data.
    auto fut = net::co_spawn(f.ioc, f.read_one(), net::use_future);
    f.spin(200ms);
    CHECK(fut.wait_for(0s) != std::future_status::ready);
    net::write(f.peer, net::buffer("x", 1));
    f.spin(200ms);
    REQUIRE(fut.wait_for(0s) == std::future_status::ready);
    CHECK_FALSE(fut.get());
}

TEST_CASE("deadline_stream: a deadline that passed with nothing pending fails the next operation",
          "[deadline_stream]") {
    pair_fixture f;
    f.stream.expires_after(30ms);
    f.spin(150ms);  // the timer fires with no operation pending
    CHECK(f.stream.socket().is_open());
    net::write(f.peer, net::buffer("x", 1));  // data is there, but the deadline has passed
    CHECK(f.run(f.read_one()) == boost::beast::error::timeout);
    // A new deadline does not revive a stream closed for a timeout.
    f.stream.expires_after(1s);
    CHECK(f.run(f.read_one()) == boost::beast::error::timeout);
}

TEST_CASE("deadline_stream: setting a new deadline before it passed clears the old one",
          "[deadline_stream]") {
    pair_fixture f;
    for (int i = 0; i < 5; ++i) {  // each deadline replaced long before it passes
        f.stream.expires_after(2s);
        f.spin(20ms);
    }
    f.stream.expires_after(1s);
    net::write(f.peer, net::buffer("x", 1));
    CHECK_FALSE(f.run(f.read_one()));
}

TEST_CASE("deadline_stream: a connect past its deadline fails with timeout", "[deadline_stream]") {
    net::io_context ioc{1};
    tcp::acceptor acceptor{ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
    deadline_stream<tcp> s{ioc.get_executor()};
    s.expires_after(20ms);
    ioc.run_for(100ms);  // passes with nothing pending (the context then has no work left)
    ioc.restart();
    auto fut = net::co_spawn(
        ioc,
        [&]() -> net::awaitable<error_code> {
            auto [ec] = co_await s.async_connect(acceptor.local_endpoint(), use_tuple);
            co_return ec;
        },
        net::use_future);
    ioc.run_for(500ms);
    REQUIRE(fut.wait_for(0s) == std::future_status::ready);
    CHECK(fut.get() == boost::beast::error::timeout);
}
