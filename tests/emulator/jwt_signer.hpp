#pragma once
// RS256 signing keys of the emulated Clerk instance: M2M JWTs, JWKS and the PEM public key.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

namespace clerk::emulator {

/// base64url without padding (RFC 7515 §2).
std::string base64url_encode(std::string_view bytes);
/// Strict base64url decode: rejects padding, characters outside the alphabet and
/// non-canonical trailing bits.
std::optional<std::string> base64url_decode(std::string_view text);

/// The instance's RSA-2048 signing keys. New JWTs use the newest key; older keys stay in JWKS
/// (and keep verifying) after a rotation, as Clerk's JWKS does during key roll-over.
///
/// @par Thread Safety
/// None: owned by the emulator's single io_context thread.
class jwt_signer {
public:
    /// Generates the first key. Throws std::runtime_error if OpenSSL fails (startup only).
    jwt_signer();

    /// kid of the key used for new JWTs (`ins_` + 27 alphanumerics).
    const std::string& current_kid() const { return keys_.back().kid; }

    /// Generates a new key that becomes current; returns its kid.
    std::string rotate();

    /// Signs `payload` with the current key. Header:
    /// `{"alg":"RS256","typ":"JWT","kid":"ins_...","cat":"cl_B7d4PD333AAA"}`.
    std::string sign(const nlohmann::json& payload) const;
    /// Signs `payload` with the current key; `header` members replace the default header's
    /// (alg and kid stay), a null member removes one: e.g. `{"typ":"at+jwt","cat":null}`.
    std::string sign(const nlohmann::json& payload, const nlohmann::json& header) const;

    /// A JWT whose signature verified against one of our keys (claims are NOT checked here).
    struct verified {
        nlohmann::json header;
        nlohmann::json payload;
    };
    /// Decodes and checks the RS256 signature; nullopt for anything malformed or not ours.
    std::optional<verified> verify(std::string_view jwt) const;

    /// `{"keys":[{use,kty,kid,alg,n,e}...]}`, newest key first.
    nlohmann::json jwks() const;

    /// The current public key as SPKI PEM (what `CLERK_JWT_KEY` / `jwtKey` expects).
    std::string public_key_pem() const;

    /// Private keys for --state-file: `[{"kid","pem"}]`, oldest first.
    nlohmann::json to_json() const;
    /// Replaces the keys from to_json() output; false (and no change) if anything is invalid.
    bool load_json(const nlohmann::json& keys);

private:
    struct pkey_free {
        void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
    };
    using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
    struct key {
        std::string kid;
        pkey_ptr pkey;
    };

    static key generate();
    const key* find(std::string_view kid) const;

    std::vector<key> keys_;  // oldest first; back() is current
};

}  // namespace clerk::emulator
