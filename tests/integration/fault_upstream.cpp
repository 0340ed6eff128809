#include "fault_upstream.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <string_view>

namespace clerk::it {
namespace {

using namespace std::chrono_literals;

/// No connection is held longer than this, whatever the test does.
constexpr auto hold_limit = 10s;

void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;  // the proxy went away: nothing more to do for this connection
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

/// Reads until the end of a request head; returns it ("" on EOF, error or timeout).
std::string read_head(int fd) {
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || head.size() > 64 * 1024) {
            return {};
        }
        head.append(buf, static_cast<std::size_t>(n));
    }
    return head;
}

/// `id=<n>` from the request line's query, 0 when absent.
std::uint64_t request_id(const std::string& head) {
    const auto line_end = head.find("\r\n");
    const auto pos = head.find("id=");
    if (pos == std::string::npos || pos > line_end) {
        return 0;
    }
    return std::strtoull(head.c_str() + pos + 3, nullptr, 10);
}

void abort_connection(int fd) {
    const linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}

/// Waits until the peer closes (or sends anything) or `hold_limit` passes.
void wait_peer_close(int fd) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(hold_limit).count()));
}

}  // namespace

fault_upstream::fault_upstream(upstream_fault mode, bool listening) : mode_(mode) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        throw std::runtime_error("fault_upstream: cannot bind 127.0.0.1:0");
    }
    port_ = ntohs(a.sin_port);
    if (listening) {
        listen();
    }
}

void fault_upstream::listen() {
    if (acceptor_.joinable()) {
        return;
    }
    if (::listen(listen_fd_, 512) != 0) {
        throw std::runtime_error("fault_upstream: listen failed");
    }
    acceptor_ = std::thread(&fault_upstream::accept_loop, this);
}

void fault_upstream::set_mode(upstream_fault mode) {
    mode_ = mode;
}

fault_upstream::~fault_upstream() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    if (acceptor_.joinable()) {
        acceptor_.join();
    }
    ::close(listen_fd_);
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return active_ == 0; });
}

void fault_upstream::release(std::uint64_t id) {
    {
        std::lock_guard lock(mu_);
        released_.insert(id);
    }
    cv_.notify_all();
}

std::uint64_t fault_upstream::connections_accepted() const {
    std::lock_guard lock(mu_);
    return accepted_;
}

std::size_t fault_upstream::active() const {
    std::lock_guard lock(mu_);
    return active_;
}

void fault_upstream::accept_loop() {
    for (;;) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            return;  // shut down
        }
        {
            std::lock_guard lock(mu_);
            if (stopping_) {
                ::close(fd);
                return;
            }
            ++accepted_;
            ++active_;
        }
        std::thread([this, fd] {
            serve(fd);
            std::lock_guard lock(mu_);
            --active_;
            cv_.notify_all();
        }).detach();
    }
}

bool fault_upstream::wait_released(std::uint64_t id) {
    std::unique_lock lock(mu_);
    const bool ok =
        cv_.wait_for(lock, hold_limit, [&] { return stopping_ || released_.count(id) != 0; });
    released_.erase(id);
    return ok;
}

void fault_upstream::serve(int fd) {
    const timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const std::string head = read_head(fd);
    if (head.empty()) {
        ::close(fd);
        return;
    }
    const std::string partial_head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        "Content-Length: " +
        std::to_string(announced_length) + "\r\n\r\n";
    switch (mode_.load()) {
        case upstream_fault::reset_mid_body:
            send_all(fd, partial_head + std::string(sent_body, 'x'));
            wait_released(request_id(head));
            abort_connection(fd);
            return;
        case upstream_fault::truncated_body:
            send_all(fd, partial_head + std::string(sent_body, 'x'));
            ::shutdown(fd, SHUT_WR);
            wait_peer_close(fd);
            ::close(fd);
            return;
        case upstream_fault::invalid_response:
            send_all(fd, request_id(head) % 2 == 0
                             ? "HTTP/1.1 2x0 garbage\r\nContent-Length: 2\r\n\r\nok"
                             : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nthis is not a header\r\n"
                               "\r\nok");
            break;
        case upstream_fault::hang:
            wait_peer_close(fd);
            break;
        case upstream_fault::none:
            send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            break;
    }
    ::shutdown(fd, SHUT_WR);
    wait_peer_close(fd);
    ::close(fd);
}

}  // namespace clerk::it
