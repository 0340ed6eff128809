#include "proxy/http/connection_registry.hpp"

#include <boost/asio/post.hpp>

#include <utility>
#include <vector>

namespace clerk::proxy {

std::uint64_t connection_registry::add(entry e) {
    std::lock_guard lock(mu_);
    const auto id = next_id_++;
    conns_.emplace(id, std::move(e));
    return id;
}

void connection_registry::remove(std::uint64_t id) {
    std::lock_guard lock(mu_);
    conns_.erase(id);
}

std::size_t connection_registry::size() const {
    std::lock_guard lock(mu_);
    return conns_.size();
}

void connection_registry::post_to(std::uint64_t id, const net::any_io_executor& strand,
                                  bool force) {
    // Runs on the connection's strand; the entry is looked up again there because the
    // connection may have ended (and been destroyed) since the post.
    net::post(strand, [this, id, force] {
        std::function<void()> f;
        {
            std::lock_guard lock(mu_);
            const auto it = conns_.find(id);
            if (it == conns_.end()) {
                return;
            }
            f = force ? it->second.close_now : it->second.close_if_idle;
        }
        if (f) {
            f();
        }
    });
}

void connection_registry::drain() {
    draining_.store(true, std::memory_order_release);
    std::vector<std::pair<std::uint64_t, net::any_io_executor>> targets;
    {
        std::lock_guard lock(mu_);
        for (const auto& [id, e] : conns_) {
            targets.emplace_back(id, e.strand);
        }
    }
    for (const auto& [id, strand] : targets) {
        post_to(id, strand, false);
    }
}

void connection_registry::close_all() {
    std::vector<std::pair<std::uint64_t, net::any_io_executor>> targets;
    {
        std::lock_guard lock(mu_);
        for (const auto& [id, e] : conns_) {
            targets.emplace_back(id, e.strand);
        }
    }
    for (const auto& [id, strand] : targets) {
        post_to(id, strand, true);
    }
}

}  // namespace clerk::proxy
