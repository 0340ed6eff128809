#include "tests/emulator/jwt_signer.hpp"

#include <array>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "tests/emulator/random_ids.hpp"

namespace clerk::emulator {

namespace {

constexpr std::string_view b64url_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct bio_free {
    void operator()(BIO* bio) const { BIO_free(bio); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;

struct md_ctx_free {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;

std::string bio_to_string(BIO* bio) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(len));
}

/// Big-endian bytes of an RSA parameter (n or e), base64url-encoded for a JWK.
std::string rsa_param_b64(EVP_PKEY* pkey, const char* name) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) {
        throw std::runtime_error("EVP_PKEY_get_bn_param failed");
    }
    std::string bytes(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
    BN_free(bn);
    return base64url_encode(bytes);
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto at = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
    for (; i + 2 < bytes.size(); i += 3) {
        const unsigned v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
        out += b64url_alphabet[(v >> 18) & 63];
        out += b64url_alphabet[(v >> 12) & 63];
        out += b64url_alphabet[(v >> 6) & 63];
        out += b64url_alphabet[v & 63];
    }
    if (i + 1 == bytes.size()) {
        const unsigned v = at(i) << 16;
        out += b64url_alphabet[(v >> 18) & 63];
        out += b64url_alphabet[(v >> 12) & 63];
    } else if (i + 2 == bytes.size()) {
        const unsigned v = (at(i) << 16) | (at(i + 1) << 8);
        out += b64url_alphabet[(v >> 18) & 63];
        out += b64url_alphabet[(v >> 12) & 63];
        out += b64url_alphabet[(v >> 6) & 63];
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(text.size() * 3 / 4);
    unsigned acc = 0;
    int bits = 0;
    for (char c : text) {
        const auto pos = b64url_alphabet.find(c);
        if (pos == std::string_view::npos) {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<unsigned>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    if ((acc & ((1U << bits) - 1)) != 0) {
        return std::nullopt;  // non-canonical: leftover bits must be zero
    }
    return out;
}

jwt_signer::jwt_signer() {
    keys_.push_back(generate());
}

jwt_signer::key jwt_signer::generate() {
    pkey_ptr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048)));
    if (!pkey) {
        throw std::runtime_error("RSA key generation failed");
    }
    return key{new_kid(), std::move(pkey)};
}

std::string jwt_signer::rotate() {
    keys_.push_back(generate());
    return keys_.back().kid;
}

const jwt_signer::key* jwt_signer::find(std::string_view kid) const {
    for (const auto& k : keys_) {
        if (k.kid == kid) {
            return &k;
        }
    }
    return nullptr;
}

std::string jwt_signer::sign(const nlohmann::json& payload) const {
    return sign(payload, nlohmann::json::object());
}

std::string jwt_signer::sign(const nlohmann::json& payload,
                             const nlohmann::json& header_changes) const {
    const key& k = keys_.back();
    nlohmann::json header = {
        {"alg", "RS256"}, {"typ", "JWT"}, {"kid", k.kid}, {"cat", "cl_B7d4PD333AAA"}};
    for (const auto& [name, value] : header_changes.items()) {
        if (name == "alg" || name == "kid") {
            continue;
        }
        if (value.is_null()) {
            header.erase(name);
        } else {
            header[name] = value;
        }
    }
    const std::string input =
        base64url_encode(header.dump()) + "." + base64url_encode(payload.dump());

    md_ctx_ptr ctx(EVP_MD_CTX_new());
    std::size_t sig_len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, k.pkey.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &sig_len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
        throw std::runtime_error("EVP_DigestSign failed");
    }
    std::string sig(sig_len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
        throw std::runtime_error("EVP_DigestSign failed");
    }
    sig.resize(sig_len);
    return input + "." + base64url_encode(sig);
}

std::optional<jwt_signer::verified> jwt_signer::verify(std::string_view jwt) const {
    const auto dot1 = jwt.find('.');
    const auto dot2 = dot1 == std::string_view::npos ? dot1 : jwt.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || jwt.find('.', dot2 + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    const auto header_raw = base64url_decode(jwt.substr(0, dot1));
    const auto payload_raw = base64url_decode(jwt.substr(dot1 + 1, dot2 - dot1 - 1));
    const auto sig = base64url_decode(jwt.substr(dot2 + 1));
    if (!header_raw || !payload_raw || !sig) {
        return std::nullopt;
    }
    verified out{nlohmann::json::parse(*header_raw, nullptr, false),
                 nlohmann::json::parse(*payload_raw, nullptr, false)};
    if (!out.header.is_object() || !out.payload.is_object() ||
        out.header.value("alg", "") != "RS256" || !out.header.contains("kid") ||
        !out.header["kid"].is_string()) {
        return std::nullopt;
    }
    const key* k = find(out.header["kid"].get<std::string>());
    if (k == nullptr) {
        return std::nullopt;
    }
    const std::string_view input = jwt.substr(0, dot2);
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    if (!ctx ||
        EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, k->pkey.get()) != 1 ||
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()),
                         sig->size(), reinterpret_cast<const unsigned char*>(input.data()),
                         input.size()) != 1) {
        return std::nullopt;
    }
    return out;
}

nlohmann::json jwt_signer::jwks() const {
    nlohmann::json keys = nlohmann::json::array();
    for (auto it = keys_.rbegin(); it != keys_.rend(); ++it) {
        keys.push_back({{"use", "sig"},
                        {"kty", "RSA"},
                        {"kid", it->kid},
                        {"alg", "RS256"},
                        {"n", rsa_param_b64(it->pkey.get(), OSSL_PKEY_PARAM_RSA_N)},
                        {"e", rsa_param_b64(it->pkey.get(), OSSL_PKEY_PARAM_RSA_E)}});
    }
    return {{"keys", std::move(keys)}};
}

std::string jwt_signer::public_key_pem() const {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), keys_.back().pkey.get()) != 1) {
        throw std::runtime_error("PEM_write_bio_PUBKEY failed");
    }
    return bio_to_string(bio.get());
}

nlohmann::json jwt_signer::to_json() const {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& k : keys_) {
        bio_ptr bio(BIO_new(BIO_s_mem()));
        if (!bio || PEM_write_bio_PrivateKey(bio.get(), k.pkey.get(), nullptr, nullptr, 0, nullptr,
                                             nullptr) != 1) {
            throw std::runtime_error("PEM_write_bio_PrivateKey failed");
        }
        out.push_back({{"kid", k.kid}, {"pem", bio_to_string(bio.get())}});
    }
    return out;
}

bool jwt_signer::load_json(const nlohmann::json& keys) {
    if (!keys.is_array() || keys.empty()) {
        return false;
    }
    std::vector<key> loaded;
    for (const auto& entry : keys) {
        if (!entry.is_object() || !entry.contains("kid") || !entry["kid"].is_string() ||
            !entry.contains("pem") || !entry["pem"].is_string()) {
            return false;
        }
        const auto pem = entry["pem"].get<std::string>();
        bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
        pkey_ptr pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                          : nullptr);
        if (!pkey || EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) {
            return false;
        }
        loaded.push_back(key{entry["kid"].get<std::string>(), std::move(pkey)});
    }
    keys_ = std::move(loaded);
    return true;
}

}  // namespace clerk::emulator
