#pragma once
// A deliberately broken upstream for fault-injection tests (fault_upstream_it.cpp): a raw TCP
// server on 127.0.0.1:0 that reads one request head per connection and then misbehaves in one
// fixed way. Blocking sockets, one short-lived thread per connection; every wait is bounded.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace clerk::it {

/// What the upstream does after reading a request head.
enum class upstream_fault {
    /// "200, Content-Length: announced_length", sent_body bytes, then waits for release(id) (or
    /// hold_limit) and aborts the connection with a TCP RST (SO_LINGER 0).
    reset_mid_body,
    /// Same head and partial body, then a clean close (FIN): the body is truncated.
    truncated_body,
    /// Not HTTP: for an even id a garbage status line ("HTTP/1.1 2x0 garbage"), for an odd
    /// one a valid status line followed by a header line without a colon; then close.
    invalid_response,
    /// Never answers; closes when the peer does (or after hold_limit).
    hang,
    /// Healthy: "200 ok" with Connection: close (the fault has stopped).
    none,
};

/// Thread safety: all members may be called from any thread. Destruction stops accepting,
/// releases every held connection and waits for the connection threads to end.
class fault_upstream {
public:
    static constexpr std::size_t announced_length = 65536;
    static constexpr std::size_t sent_body = 1024;

    /// Binds 127.0.0.1:0. With `listening` false the port is bound but not listening, so every
    /// connection attempt is refused (RST) until listen() is called: a refusing upstream that
    /// can recover on the same port.
    explicit fault_upstream(upstream_fault mode, bool listening = true);
    ~fault_upstream();
    fault_upstream(const fault_upstream&) = delete;
    fault_upstream& operator=(const fault_upstream&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    /// Starts accepting (no-op when already listening).
    void listen();
    /// Changes the behaviour for connections accepted from now on.
    void set_mode(upstream_fault mode);

    /// reset_mid_body: the connection whose request target carries `id=<id>` may reset now.
    void release(std::uint64_t id);
    std::uint64_t connections_accepted() const;
    /// Connection threads still running.
    std::size_t active() const;

private:
    void accept_loop();
    void serve(int fd);
    bool wait_released(std::uint64_t id);

    std::atomic<upstream_fault> mode_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread acceptor_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::set<std::uint64_t> released_;
    bool stopping_ = false;
    std::size_t active_ = 0;
    std::uint64_t accepted_ = 0;
};

}  // namespace clerk::it
