#pragma once
// INTERNAL: include from proxy/ sources only (Beast fields).
//
// The header container of the data path: Beast's basic_fields with a per-thread recycling
// allocator. Beast allocates one block per header field (name and value in it) and one for a
// request's method and target; with std::allocator that was ~9 malloc/free pairs per proxied
// request. Here a freed block goes to a free list of its thread (size classes of 64 to 2048
// bytes, at most 256 blocks each), and the next message's fields take it back: the steady state
// calls malloc for none of them. Larger blocks go to the global heap as before.
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/parser.hpp>

#include <cstddef>

namespace clerk::proxy {

namespace detail {
void* field_block_allocate(std::size_t bytes);
void field_block_deallocate(void* p, std::size_t bytes) noexcept;
}  // namespace detail

/// Stateless (all instances equal), so containers using it move and swap freely; a block may be
/// freed on another thread than the one that allocated it (it joins that thread's list).
template <class T>
class field_allocator {
public:
    using value_type = T;
    field_allocator() noexcept = default;
    template <class U>
    field_allocator(const field_allocator<U>&) noexcept {}  // NOLINT: converting, as allocators do

    T* allocate(std::size_t n) {
        return static_cast<T*>(detail::field_block_allocate(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        detail::field_block_deallocate(p, n * sizeof(T));
    }

    template <class U>
    bool operator==(const field_allocator<U>&) const noexcept {
        return true;
    }
};

using header_fields = boost::beast::http::basic_fields<field_allocator<char>>;

template <class Body>
using request_parser = boost::beast::http::request_parser<Body, field_allocator<char>>;
template <class Body>
using response_parser = boost::beast::http::response_parser<Body, field_allocator<char>>;

}  // namespace clerk::proxy
