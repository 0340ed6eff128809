// libFuzzer target: the HTTP/2 frame path of the listener (issue #18) — what a client's bytes
// do to proxy/h2/h2_frames.cpp (nghttp2's framing, HPACK and flow control plus the proxy's
// header accounting, stream limit, body pipes and response path), without sockets.
//
// Input: the bytes after the client preface (which the target sends first), fed in pieces whose
// sizes come from the input's first byte. Every request is answered the way the proxy answers:
// a too-large header block with a 431, a request whose :path carries "grpc" with a trailers-only
// gRPC refusal, "/body" with a body and trailers, anything else with 200 and a small body after
// its request body (consumed as it arrives) ends; the output is drained after every piece.
//
// Invariants: no request reaches the handler with a decoded block over max_header_bytes
// (unless marked too_large; then only the fields that fit are kept); a request that is not too
// large carries :method and, unless CONNECT, :path (what the proxy relies on: nghttp2 validates the
// pseudo-headers); open streams never exceed max_concurrent_streams; after end_all() every
// stream is closed; no crash, leak or sanitizer report.
#include "proxy/h2/h2_frames.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clerk::proxy::h2::header_list;
using clerk::proxy::h2::server_frames;
using clerk::proxy::h2::server_stream;

constexpr std::string_view preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::size_t max_header_bytes = 1024;
constexpr std::size_t max_streams = 4;

void require(bool ok) {
    if (!ok) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::size_t piece = 1 + data[0] % 64;
    ++data;
    --size;

    std::vector<std::shared_ptr<server_stream>> streams;
    server_frames* engine = nullptr;
    server_frames frames(
        server_frames::settings{max_streams, max_header_bytes},
        [&](const std::shared_ptr<server_stream>& s) {
            require(s->header_bytes <= max_header_bytes || s->too_large);
            std::size_t kept = 0;
            for (const auto& [n, v] : s->headers) {
                kept += n.size() + v.size() + 4;
            }
            require(kept <= max_header_bytes);
            require(engine->open_streams() <= max_streams);
            streams.push_back(s);
            std::string_view path;
            std::string_view method;
            for (const auto& [n, v] : s->headers) {
                if (n == ":path") {
                    path = v;
                } else if (n == ":method") {
                    method = v;
                }
            }
            require(s->too_large || (!method.empty() && (method == "CONNECT" || !path.empty())));
            if (s->too_large) {
                engine->respond(*s, 431, {{"content-length", "0"}}, true);
                s->discard_body = true;
            } else if (path.find("grpc") != std::string_view::npos) {
                engine->respond(*s, 200,
                                {{"content-type", "application/grpc"},
                                 {"grpc-status", "16"},
                                 {"grpc-message", "missing_token"}},
                                true);
                s->discard_body = true;
            } else if (path == "/body") {
                engine->respond(*s, 200, {{"content-type", "text/plain"}}, false);
                static const std::string body(70000, 'x');  // more than one window
                s->res.trailers = {{"x-trailer", "yes"}};
                s->res.write(reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
                s->res.finish();
            }
            // Others: answered when their body ends (below).
            s->req.on_readable = [w = s.get()] {
                if (w->req.pending() > 0) {
                    w->req.consume(w->req.pending());
                }
            };
            if (s->req.pending() > 0) {
                s->req.consume(s->req.pending());
            }
        },
        [] {});
    engine = &frames;
    require(frames.start());
    std::string out;
    frames.produce(out, 1 << 20);
    bool ok = frames.receive(reinterpret_cast<const std::uint8_t*>(preface.data()), preface.size());
    for (std::size_t at = 0; ok && at < size; at += piece) {
        const std::size_t n = std::min(piece, size - at);
        ok = frames.receive(data + at, n);
        // Answer the requests whose body has ended.
        for (auto& s : streams) {
            if (!s->submitted && !s->closed && s->req.eof) {
                frames.respond(*s, 200, {{"content-length", "2"}}, false);
                s->res.write(reinterpret_cast<const std::uint8_t*>("ok"), 2);
                s->res.finish();
            }
        }
        out.clear();
        frames.produce(out, 1 << 20);
        require(frames.open_streams() <= max_streams + 1);  // +1: a stream being refused
    }
    frames.end_all();
    for (auto& s : streams) {
        require(s->closed);
        s->req.on_readable = nullptr;
    }
    return 0;
}
