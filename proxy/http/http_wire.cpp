#include "proxy/http/http_wire.hpp"

#include <boost/beast/http/status.hpp>

#include <charconv>

namespace clerk::proxy {

namespace http = boost::beast::http;

void append_request_line(std::string& out, std::string_view method, std::string_view target) {
    out += method;
    out += ' ';
    out += target;
    out += " HTTP/1.1\r\n";
}

void append_status_line(std::string& out, unsigned version, unsigned status,
                        std::string_view reason) {
    out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    char digits[8];
    const auto r = std::to_chars(digits, digits + sizeof digits, status);
    out.append(digits, r.ptr);
    out += ' ';
    if (reason.empty()) {
        reason = http::obsolete_reason(static_cast<http::status>(status));
    }
    out += reason;
    out += "\r\n";
}

void append_fields(std::string& out, const header_fields& fields) {
    for (const auto& f : fields) {
        out += f.name_string();
        out += ": ";
        out += f.value();
        out += "\r\n";
    }
    out += "\r\n";
}

void append_chunk_header(std::string& out, std::uint64_t size) {
    char digits[20];
    const auto r = std::to_chars(digits, digits + sizeof digits, size, 16);
    out.append(digits, r.ptr);
    out += "\r\n";
}

chunk_frame::chunk_frame(std::uint64_t size, bool last) noexcept {
    if (size > 0) {
        const auto r = std::to_chars(size_line_, size_line_ + sizeof size_line_ - 2, size, 16);
        r.ptr[0] = '\r';
        r.ptr[1] = '\n';
        size_len_ = static_cast<std::size_t>(r.ptr - size_line_) + 2;
    }
    static constexpr std::string_view end_and_last = "\r\n0\r\n\r\n";
    tail_ = size > 0 ? (last ? end_and_last : end_and_last.substr(0, 2))
                     : (last ? end_and_last.substr(2) : std::string_view());
}

}  // namespace clerk::proxy
