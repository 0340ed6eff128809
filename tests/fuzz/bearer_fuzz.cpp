// libFuzzer target: Authorization header extraction and token classification
// (docs/reference.md §4 "Classification", §5 "Token").
//
// Input: up to three Authorization header values separated by '\n' (the last keeps any further
// newlines, so CR/LF inside a value are reached too). An accepted token must be 1..4096 bytes,
// hold no whitespace and be a view into the single header value it came from; classification
// must be deterministic and an ok class must be consistent with the token's shape.
#include "core/bearer_token.hpp"
#include "fuzz/fuzz_util.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace {

using clerk::fuzz::check;
namespace core = clerk::core;

bool is_whitespace(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

void check_classification(std::string_view token) {
    const core::classification c = core::classify_token(token);
    const core::classification again = core::classify_token(token);
    check(c.status == again.status && c.cls.type == again.cls.type &&
              c.cls.format == again.cls.format,
          "classification is deterministic");
    if (c.status != core::classify_status::ok) {
        return;
    }
    check(!token.empty() && token.size() <= core::max_token_bytes, "classified token is bounded");
    if (c.cls.format == core::token_format::opaque) {
        // Opaque tokens are recognised by prefix only.
        const bool prefixed =
            (c.cls.type == core::token_type::m2m_token && token.starts_with("mt_")) ||
            (c.cls.type == core::token_type::oauth_token && token.starts_with("oat_")) ||
            (c.cls.type == core::token_type::api_key && token.starts_with("ak_"));
        check(prefixed, "an opaque class matches its prefix");
    } else {
        // A JWT has exactly two dots and a session token is never a prefixed opaque token.
        std::size_t dots = 0;
        for (const char ch : token) {
            dots += ch == '.' ? 1 : 0;
        }
        check(dots == 2, "a JWT class has three segments");
        check(c.cls.type != core::token_type::api_key, "api keys are never JWTs");
        check(!token.starts_with("mt_"), "an mt_ token is never classified as a JWT");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in = clerk::fuzz::as_view(data, size);
    const std::vector<std::string_view> values = clerk::fuzz::split_lines(in, 3);

    // Every prefix of the header list: zero, one, two and three Authorization headers.
    for (std::size_t n = 0; n <= values.size(); ++n) {
        const std::span<const std::string_view> headers(values.data(), n);
        const core::bearer_result r = core::extract_bearer(headers);
        if (n != 1) {
            check(r.status != core::bearer_status::ok,
                  "zero or several headers never yield a token");
        }
        if (r.status != core::bearer_status::ok) {
            check(r.token.empty(), "no token unless ok");
            continue;
        }
        check(!r.token.empty() && r.token.size() <= core::max_token_bytes,
              "token is 1..4096 bytes");
        for (const char c : r.token) {
            check(!is_whitespace(c), "token holds no whitespace");
        }
        check(clerk::fuzz::views_into(r.token, headers.front()), "token is a view into its header");
        check_classification(r.token);
    }

    // Classification of the raw input too (extract_bearer bounds what it sees; this does not).
    check_classification(in);
    return 0;
}
