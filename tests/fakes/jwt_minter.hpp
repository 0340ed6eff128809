#pragma once
// Test helper: an RSA key pair that mints JWTs (good and forged) and exports its public key as
// PEM (SPKI or PKCS#1) and as a JWKS document. Header-only; OpenSSL 3 EVP + nlohmann/json.
// Independent of core/ on purpose (its own base64url), so it can serve as a test oracle.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>

namespace clerk::testing {

/// One RSA key pair. Thread Safety: const members may be called concurrently.
/// Test-only: failures throw std::runtime_error (never used on a data path).
class jwt_minter {
public:
    /// Generates a fresh key: 2048 bits costs ~50-300 ms, so prefer shared().
    explicit jwt_minter(int bits = 2048) : key_(EVP_RSA_gen(static_cast<unsigned>(bits))) {
        check(key_ != nullptr, "EVP_RSA_gen");
    }

    /// Process-wide 2048-bit keys, generated on first use and kept for the whole test binary.
    /// Different indexes are different keys (index 1 is "the wrong key" for index 0).
    static const jwt_minter& shared(std::size_t index = 0) {
        static std::mutex mutex;
        static std::deque<jwt_minter> keys;  // deque: references stay valid as it grows
        const std::lock_guard<std::mutex> lock(mutex);
        while (keys.size() <= index) {
            keys.emplace_back();
        }
        return keys[index];
    }

    /// SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----"), as Clerk's dashboard shows it.
    std::string public_pem() const {
        const std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
        check(bio && PEM_write_bio_PUBKEY(bio.get(), key_.get()) == 1, "PEM_write_bio_PUBKEY");
        char* data = nullptr;
        const long len = BIO_get_mem_data(bio.get(), &data);
        return std::string(data, static_cast<std::size_t>(len));
    }

    /// PKCS#1 PEM ("-----BEGIN RSA PUBLIC KEY-----").
    std::string public_pem_pkcs1() const {
        const std::unique_ptr<OSSL_ENCODER_CTX, decltype(&OSSL_ENCODER_CTX_free)> ctx(
            OSSL_ENCODER_CTX_new_for_pkey(key_.get(), EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific",
                                          nullptr),
            &OSSL_ENCODER_CTX_free);
        unsigned char* data = nullptr;
        std::size_t len = 0;
        check(ctx && OSSL_ENCODER_to_data(ctx.get(), &data, &len) == 1, "OSSL_ENCODER_to_data");
        std::string pem(reinterpret_cast<const char*>(data), len);
        OPENSSL_free(data);
        return pem;
    }

    /// The public key as one JWK. `alg` "" leaves the member out.
    nlohmann::json jwk(std::string_view kid, std::string_view alg = "RS256") const {
        nlohmann::json k = {{"use", "sig"},
                            {"kty", "RSA"},
                            {"kid", std::string(kid)},
                            {"n", b64url(bn_param(OSSL_PKEY_PARAM_RSA_N))},
                            {"e", b64url(bn_param(OSSL_PKEY_PARAM_RSA_E))}};
        if (!alg.empty()) {
            k["alg"] = std::string(alg);
        }
        return k;
    }

    /// `{"keys":[<jwk>]}`, the shape of Clerk's `GET /v1/jwks`.
    std::string jwks_json(std::string_view kid, std::string_view alg = "RS256") const {
        return nlohmann::json{{"keys", nlohmann::json::array({jwk(kid, alg)})}}.dump();
    }

    /// Signs raw header and payload JSON text as given (never re-serialised, so tests can forge
    /// duplicate members or odd spacing) with RSASSA-PKCS1-v1_5 and the SHA of `alg`
    /// (RS256/RS384/RS512). Returns "b64(header).b64(payload).b64(signature)".
    std::string sign(std::string_view header_json, std::string_view payload_json,
                     std::string_view alg = "RS256") const {
        const std::string input = b64url(header_json) + "." + b64url(payload_json);
        return input + "." + b64url(rsa_sign(input, digest(alg)));
    }

    /// Serialises header and payload and signs with the header's alg (RS256 when the header
    /// names no RS* alg, which lets tests claim `alg:none` yet carry an RSA signature).
    std::string mint(const nlohmann::json& header, const nlohmann::json& payload) const {
        std::string alg = "RS256";
        if (header.contains("alg") && header["alg"].is_string()) {
            const auto& a = header["alg"].get_ref<const std::string&>();
            if (a == "RS384" || a == "RS512") {
                alg = a;
            }
        }
        return sign(header.dump(), payload.dump(), alg);
    }

    /// HS256/384/512 with an arbitrary secret: the classic alg-confusion forgery when the
    /// secret is the RSA public key PEM.
    static std::string hmac_sign(std::string_view header_json, std::string_view payload_json,
                                 std::string_view secret, std::string_view alg = "HS256") {
        const EVP_MD* md = alg == "HS512"   ? EVP_sha512()
                           : alg == "HS384" ? EVP_sha384()
                                            : EVP_sha256();
        const std::string input = b64url(header_json) + "." + b64url(payload_json);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        check(HMAC(md, secret.data(), static_cast<int>(secret.size()),
                   reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
                   &len) != nullptr,
              "HMAC");
        return input + "." + b64url(std::string_view(reinterpret_cast<const char*>(mac), len));
    }

    /// "b64(header).b64(payload).<signature_b64 as given>" with no signing at all.
    static std::string unsigned_token(std::string_view header_json, std::string_view payload_json,
                                      std::string_view signature_b64 = "") {
        return b64url(header_json) + "." + b64url(payload_json) + "." + std::string(signature_b64);
    }

    /// A valid Clerk M2M payload (docs/clerk-protocol.md §4.3) around `now_s` (seconds).
    static nlohmann::json m2m_claims(long long now_s, std::string_view sub = "mch_2abc",
                                     long long ttl_s = 3600) {
        return {{"iss", "https://clerk.m2m.example.test"},
                {"jti", "mt_2xyz"},
                {"sub", std::string(sub)},
                {"aud", {"mch_2def"}},
                {"scopes", "mch_2def mch_2ghi"},
                {"iat", now_s},
                {"nbf", now_s - 10},
                {"exp", now_s + ttl_s}};
    }

    /// Unpadded base64url (RFC 4648 §5).
    static std::string b64url(std::string_view bytes) {
        static constexpr char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        std::string out;
        std::size_t i = 0;
        const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
        for (; i + 2 < bytes.size(); i += 3) {
            const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
            out += {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63],
                    alphabet[v & 63]};
        }
        if (bytes.size() - i == 1) {
            const unsigned v = byte(i) << 16;
            out += {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63]};
        } else if (bytes.size() - i == 2) {
            const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
            out += {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63]};
        }
        return out;
    }

private:
    struct pkey_free {
        void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
    };

    static void check(bool ok, const char* what) {
        if (!ok) {
            throw std::runtime_error(std::string("jwt_minter: ") + what + " failed");
        }
    }

    static const EVP_MD* digest(std::string_view alg) {
        if (alg == "RS384") {
            return EVP_sha384();
        }
        return alg == "RS512" ? EVP_sha512() : EVP_sha256();
    }

    std::string rsa_sign(std::string_view input, const EVP_MD* md) const {
        const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                          &EVP_MD_CTX_free);
        std::size_t len = 0;
        const auto* data = reinterpret_cast<const unsigned char*>(input.data());
        check(ctx && EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key_.get()) == 1 &&
                  EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) == 1,
              "EVP_DigestSignInit");
        std::string sig(len, '\0');
        check(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data,
                             input.size()) == 1,
              "EVP_DigestSign");
        sig.resize(len);
        return sig;
    }

    std::string bn_param(const char* name) const {
        BIGNUM* bn = nullptr;
        check(EVP_PKEY_get_bn_param(key_.get(), name, &bn) == 1, "EVP_PKEY_get_bn_param");
        std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
        BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
        BN_free(bn);
        return out;
    }

    std::unique_ptr<EVP_PKEY, pkey_free> key_;
};

}  // namespace clerk::testing
