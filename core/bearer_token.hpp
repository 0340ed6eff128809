#pragma once
// Bearer extraction (docs/reference.md §5 "Token") and token classification (docs/reference.md §4).
#include "core/token_type.hpp"

#include <cstddef>
#include <span>
#include <string_view>

namespace clerk::core {

inline constexpr std::size_t max_token_bytes = 4096;

enum class bearer_status {
    ok,       ///< exactly one Authorization header, scheme Bearer, 1..4096 byte token
    missing,  ///< no Authorization header, or a scheme other than Bearer -> 401 missing_token
    invalid_request,  ///< two Authorization headers, empty token, token > 4096 bytes -> 401
                      ///< invalid_request
};

struct bearer_result {
    bearer_status status = bearer_status::missing;
    std::string_view token;  ///< views into the header value; valid while the header lives
};

/// `values` are all Authorization header values of the request, in order.
/// Scheme "Bearer" is case-insensitive and is followed by one or more spaces (or tabs).
/// Trailing whitespace is not part of the token. A token containing whitespace is invalid_request.
bearer_result extract_bearer(std::span<const std::string_view> values);

struct token_class {
    token_type type = token_type::session_token;
    token_format format = token_format::opaque;
};

enum class classify_status { ok, malformed };

struct classification {
    classify_status status = classify_status::malformed;
    token_class cls;
};

/// docs/reference.md §4 order: `mt_` -> m2m (opaque); JWT with payload.sub "mch_..." -> m2m (jwt);
/// `oat_` or JWT with typ at+jwt/application/at+jwt -> oauth_token; `ak_` -> api_key;
/// any other well-formed JWT -> session_token. Anything else (including a JWT-shaped string
/// whose header or payload is not base64url JSON objects) is `malformed`.
/// No signature is checked here.
classification classify_token(std::string_view token);

}  // namespace clerk::core
