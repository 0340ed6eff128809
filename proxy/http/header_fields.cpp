#include "proxy/http/header_fields.hpp"

#include <array>
#include <new>

namespace clerk::proxy::detail {
namespace {

// Under AddressSanitizer every block goes straight to the heap, so that a use after free of a
// header is still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool recycle = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool recycle = false;
#else
constexpr bool recycle = true;
#endif
#else
constexpr bool recycle = true;
#endif

// Up to 2 KiB: an Authorization field carrying a JWT (~0.7-2 KiB with claims) is recycled
// like any other, so a cached JWT costs no allocation either.
constexpr std::array<std::size_t, 6> class_bytes{64, 128, 256, 512, 1024, 2048};
constexpr std::size_t max_blocks_per_class = 256;

struct free_block {
    free_block* next;
};

/// Trivially destructible, so it is usable until the thread's very end; `drain` below empties
/// it when the thread exits.
struct pool {
    std::array<free_block*, class_bytes.size()> head{};
    std::array<std::size_t, class_bytes.size()> count{};
    bool closed = false;  // the thread is exiting: free straight to the heap
};
thread_local pool tl_pool;

struct pool_drain {
    ~pool_drain() {
        for (auto& h : tl_pool.head) {
            while (h != nullptr) {
                auto* next = h->next;
                ::operator delete(h);
                h = next;
            }
        }
        tl_pool.count = {};
        tl_pool.closed = true;
    }
};
thread_local pool_drain tl_drain;

int class_of(std::size_t bytes) {
    for (std::size_t i = 0; i < class_bytes.size(); ++i) {
        if (bytes <= class_bytes[i]) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

}  // namespace

void* field_block_allocate(std::size_t bytes) {
    const int c = recycle ? class_of(bytes) : -1;
    if (c < 0) {
        return ::operator new(bytes);
    }
    auto& p = tl_pool;
    if (auto* b = p.head[c]; b != nullptr) {
        p.head[c] = b->next;
        --p.count[c];
        return b;
    }
    (void)&tl_drain;  // registers the drain for this thread's exit
    return ::operator new(class_bytes[c]);
}

void field_block_deallocate(void* ptr, std::size_t bytes) noexcept {
    const int c = recycle ? class_of(bytes) : -1;
    auto& p = tl_pool;
    if (c < 0 || p.closed || p.count[c] >= max_blocks_per_class) {
        ::operator delete(ptr);
        return;
    }
    (void)&tl_drain;  // a thread that only frees also drains its list at exit
    auto* b = static_cast<free_block*>(ptr);
    b->next = p.head[c];
    p.head[c] = b;
    ++p.count[c];
}

}  // namespace clerk::proxy::detail
