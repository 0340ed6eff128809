#pragma once
// One RSA public key for JWT verification (RFC 7517 JWK or PEM), and RS256/RS384/RS512
// (RSASSA-PKCS1-v1_5) signature checks with it. OpenSSL 3 EVP only; no I/O.
#include <openssl/types.h>
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace clerk::core {

/// Frees an EVP_PKEY (EVP_PKEY_free).
struct evp_pkey_deleter {
    void operator()(EVP_PKEY* p) const noexcept;
};
using evp_pkey_ptr = std::unique_ptr<EVP_PKEY, evp_pkey_deleter>;

/// RSA modulus sizes accepted on import. Below 2048 bits is too weak to trust; above 8192 bits
/// only makes each verification (attacker-triggered, per request) slower.
inline constexpr int jwk_min_rsa_bits = 2048;
inline constexpr int jwk_max_rsa_bits = 8192;

/// An RSA public verification key with its JWK `kid` and `alg` ("" when the source had none).
///
/// @par Thread Safety
/// Immutable after construction; verify() may be called concurrently from any thread (each call
/// uses its own EVP_MD_CTX, copied from a template prepared at construction: EVP_MD_CTX_copy_ex
/// reads its source through a const pointer, which openssl-threads(7) allows concurrently).
class jwk {
public:
    jwk(std::string kid, std::string alg, evp_pkey_ptr key) noexcept;

    /// Imports one JWKS entry: `kty` "RSA", `n` and `e` unpadded base64url, optional `kid`,
    /// `alg` (must be RS256/RS384/RS512 if present) and `use` (must be "sig" if present).
    /// An entry without a string `kid` is refused: it could never be selected.
    /// Returns nullopt and a short reason in `why` for anything unusable. Never throws.
    static std::optional<jwk> from_json(const nlohmann::json& entry, std::string& why) noexcept;

    /// Imports a PEM public key: SPKI ("BEGIN PUBLIC KEY") or PKCS#1 ("BEGIN RSA PUBLIC KEY").
    /// Tolerates literal "\n" escapes and a single-line body (keys pasted into env variables).
    /// The result has an empty kid and alg. Never throws.
    static std::optional<jwk> from_pem(std::string_view pem, std::string& why) noexcept;

    const std::string& kid() const noexcept { return kid_; }
    /// "RS256" | "RS384" | "RS512", or "" when the key does not pin an algorithm.
    const std::string& alg() const noexcept { return alg_; }
    int bits() const noexcept;

    /// RSASSA-PKCS1-v1_5 with SHA-256/384/512 for `alg` RS256/RS384/RS512. False for any other
    /// `alg`, a signature of the wrong length, or any OpenSSL failure (whose error queue is
    /// cleared so that it cannot leak into unrelated TLS code on this thread).
    bool verify(std::string_view alg, std::string_view signing_input,
                std::string_view signature) const noexcept;

    /// Verification contexts for RS256, RS384 and RS512, initialized once with this key and
    /// PKCS#1 v1.5 padding: a verification copies one instead of initializing its own, which
    /// costs OpenSSL 3 a method fetch and a key export each time.
    struct prepared;

private:
    std::string kid_;
    std::string alg_;
    evp_pkey_ptr key_;
    std::shared_ptr<const prepared> prepared_;  ///< nullptr (or a null slot) if preparing failed,
                                                ///< and a failed copy: full init per call
};

/// True for "RS256", "RS384" and "RS512": the only algorithms accepted (docs/reference.md §4).
bool is_allowed_jwt_alg(std::string_view alg) noexcept;

}  // namespace clerk::core
