#include "proxy/http_wire.hpp"

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

}  // namespace clerk::proxy
