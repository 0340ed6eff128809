#pragma once
// INTERNAL: include from proxy/ sources only (Beast fields).
//
// HTTP/1.1 heads and chunk framing written by hand into a reused buffer. The relay used Beast's
// serializer, whose buffers_cat iteration cost about a tenth of the proxy's CPU per request
// (issue #14 profile); the wire format itself is a few lines. Pure functions, no I/O, tested
// against Beast's serializer as the oracle (tests/proxy/http_wire_test.cpp).
#include "proxy/http/header_fields.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace clerk::proxy {

/// Appends "METHOD TARGET HTTP/1.1\r\n".
void append_request_line(std::string& out, std::string_view method, std::string_view target);

/// Appends "HTTP/1.x STATUS REASON\r\n"; an empty `reason` becomes the standard one (as Beast's
/// serializer does). `version` is 10 or 11.
void append_status_line(std::string& out, unsigned version, unsigned status,
                        std::string_view reason);

/// Appends every field as "Name: value\r\n", in order, then the blank line ending the head.
void append_fields(std::string& out, const header_fields& fields);

/// Appends the chunk-size line of a chunk of `size` (> 0) bytes: hex digits, then CRLF.
void append_chunk_header(std::string& out, std::uint64_t size);

/// CRLF after a chunk's data, and the last chunk with an empty trailer section.
inline constexpr std::string_view chunk_end = "\r\n";
inline constexpr std::string_view last_chunk = "0\r\n\r\n";

/// The framing around `size` bytes of body data sent chunked: `head()` before the data (the
/// chunk-size line; empty when size is 0) and `tail()` after it (CRLF ending the chunk, then
/// the last chunk when `last`). One piece of a body is then head + data + tail in one write.
class chunk_frame {
public:
    chunk_frame(std::uint64_t size, bool last) noexcept;
    std::string_view head() const noexcept { return {size_line_, size_len_}; }
    std::string_view tail() const noexcept { return tail_; }

private:
    char size_line_[20]{};  // 16 hex digits and CRLF at most
    std::size_t size_len_ = 0;
    std::string_view tail_;
};

}  // namespace clerk::proxy
