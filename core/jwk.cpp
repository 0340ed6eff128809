#include "core/jwk.hpp"

#include "core/base64url.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cctype>
#include <utility>

namespace clerk::core {
namespace {

struct bn_deleter {
    void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
struct param_bld_deleter {
    void operator()(OSSL_PARAM_BLD* p) const noexcept { OSSL_PARAM_BLD_free(p); }
};
struct params_deleter {
    void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
};
struct pkey_ctx_deleter {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
struct md_ctx_deleter {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct encode_ctx_deleter {
    void operator()(EVP_ENCODE_CTX* p) const noexcept { EVP_ENCODE_CTX_free(p); }
};
using bn_ptr = std::unique_ptr<BIGNUM, bn_deleter>;

// Any failed OpenSSL call leaves entries on the thread's error queue; TLS code sharing the
// thread would later misread them as its own errors. Every failure path goes through here.
template <class T>
std::optional<T> fail(std::string& why, const char* reason) {
    ERR_clear_error();
    why = reason;
    return std::nullopt;
}

const EVP_MD* digest_for(std::string_view alg) noexcept {
    if (alg == "RS256") {
        return EVP_sha256();
    }
    if (alg == "RS384") {
        return EVP_sha384();
    }
    if (alg == "RS512") {
        return EVP_sha512();
    }
    return nullptr;
}

// Size and exponent bounds shared by both import paths. e must be odd, > 1 and at most 64 bits
// (OpenSSL itself refuses larger exponents for big moduli; no real key uses one).
bool acceptable_rsa(const EVP_PKEY* key, const char*& why) {
    if (EVP_PKEY_is_a(key, "RSA") != 1) {
        why = "not an RSA key";
        return false;
    }
    const int bits = EVP_PKEY_get_bits(key);
    if (bits < jwk_min_rsa_bits || bits > jwk_max_rsa_bits) {
        why = "RSA modulus size out of range";
        return false;
    }
    BIGNUM* raw_e = nullptr;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &raw_e) != 1) {
        why = "RSA exponent unreadable";
        return false;
    }
    const bn_ptr e(raw_e);
    if (BN_is_odd(e.get()) != 1 || BN_num_bits(e.get()) < 2 || BN_num_bits(e.get()) > 64) {
        why = "RSA exponent out of range";
        return false;
    }
    return true;
}

// n and e as big-endian magnitudes -> a provider-native RSA public key.
evp_pkey_ptr rsa_from_components(const std::string& n, const std::string& e) {
    bn_ptr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                          static_cast<int>(n.size()), nullptr));
    bn_ptr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                          static_cast<int>(e.size()), nullptr));
    const std::unique_ptr<OSSL_PARAM_BLD, param_bld_deleter> bld(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !bld ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
        return nullptr;
    }
    const std::unique_ptr<OSSL_PARAM, params_deleter> params(OSSL_PARAM_BLD_to_param(bld.get()));
    const std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_deleter> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    EVP_PKEY* raw = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        return nullptr;
    }
    return evp_pkey_ptr(raw);
}

const std::string* string_member(const nlohmann::json& obj, const char* name) {
    const auto it = obj.find(name);
    return it != obj.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

// A 16384-bit RSA SPKI is ~2.8 KB of base64; anything far larger is not a public key.
constexpr std::size_t max_pem_base64 = std::size_t{64} * 1024;

// The base64 body of a PEM block, whitespace and literal "\n"/"\r" escapes removed, decoded
// with OpenSSL's standard-alphabet decoder (which handles '=' padding).
std::optional<std::string> pem_body_der(std::string_view body) {
    std::string b64;
    b64.reserve(body.size());
    for (std::size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        if (c == '\\' && i + 1 < body.size() && (body[i + 1] == 'n' || body[i + 1] == 'r')) {
            ++i;
            continue;
        }
        if (std::isspace(static_cast<unsigned char>(c)) != 0) {
            continue;
        }
        const bool b64_char =
            std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '/' || c == '=';
        if (!b64_char) {
            return std::nullopt;
        }
        b64.push_back(c);
    }
    if (b64.empty() || b64.size() % 4 != 0 || b64.size() > max_pem_base64) {
        return std::nullopt;
    }
    const std::unique_ptr<EVP_ENCODE_CTX, encode_ctx_deleter> ctx(EVP_ENCODE_CTX_new());
    if (!ctx) {
        return std::nullopt;
    }
    std::string der(b64.size() / 4 * 3 + 3, '\0');
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    int n = 0;
    int tail = 0;
    EVP_DecodeInit(ctx.get());
    if (EVP_DecodeUpdate(ctx.get(), out, &n, reinterpret_cast<const unsigned char*>(b64.data()),
                         static_cast<int>(b64.size())) < 0 ||
        EVP_DecodeFinal(ctx.get(), out + n, &tail) != 1) {
        return std::nullopt;
    }
    der.resize(static_cast<std::size_t>(n) + static_cast<std::size_t>(tail));
    return der;
}

}  // namespace

void evp_pkey_deleter::operator()(EVP_PKEY* p) const noexcept {
    EVP_PKEY_free(p);
}

bool is_allowed_jwt_alg(std::string_view alg) noexcept {
    return digest_for(alg) != nullptr;
}

struct jwk::prepared {
    std::array<EVP_MD_CTX*, 3> ctx{};  ///< RS256, RS384, RS512 (nullptr: not prepared)
    prepared() = default;
    prepared(const prepared&) = delete;
    prepared& operator=(const prepared&) = delete;
    ~prepared() {
        for (EVP_MD_CTX* c : ctx) {
            EVP_MD_CTX_free(c);
        }
    }
};

namespace {

// Index into jwk::prepared::ctx, or -1.
int prepared_index(std::string_view alg) noexcept {
    if (alg == "RS256") {
        return 0;
    }
    if (alg == "RS384") {
        return 1;
    }
    return alg == "RS512" ? 2 : -1;
}

// DigestVerifyInit with PKCS#1 v1.5 padding; false (error queue cleared) on any failure.
bool init_verify(EVP_MD_CTX* ctx, const EVP_MD* md, EVP_PKEY* key) noexcept {
    EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
    if (EVP_DigestVerifyInit(ctx, &pctx, md, nullptr, key) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
        ERR_clear_error();
        return false;
    }
    return true;
}

}  // namespace

jwk::jwk(std::string kid, std::string alg, evp_pkey_ptr key) noexcept
    : kid_(std::move(kid)), alg_(std::move(alg)), key_(std::move(key)) {
    if (!key_) {
        return;
    }
    try {
        auto p = std::make_shared<prepared>();
        for (const char* name : {"RS256", "RS384", "RS512"}) {
            EVP_MD_CTX* c = EVP_MD_CTX_new();
            if (c != nullptr && !init_verify(c, digest_for(name), key_.get())) {
                EVP_MD_CTX_free(c);
                c = nullptr;
            }
            p->ctx[static_cast<std::size_t>(prepared_index(name))] = c;
        }
        prepared_ = std::move(p);
    } catch (...) {
        prepared_.reset();  // out of memory: every verification takes the slow path
    }
}

int jwk::bits() const noexcept {
    return key_ ? EVP_PKEY_get_bits(key_.get()) : 0;
}

std::optional<jwk> jwk::from_json(const nlohmann::json& entry, std::string& why) noexcept {
    try {
        if (!entry.is_object()) {
            return fail<jwk>(why, "entry is not an object");
        }
        const std::string* kty = string_member(entry, "kty");
        if (kty == nullptr || *kty != "RSA") {
            return fail<jwk>(why, "kty is not RSA");
        }
        if (entry.contains("use")) {
            const std::string* use = string_member(entry, "use");
            if (use == nullptr || *use != "sig") {
                return fail<jwk>(why, "use is not sig");
            }
        }
        std::string alg;
        if (entry.contains("alg")) {
            const std::string* a = string_member(entry, "alg");
            if (a == nullptr || !is_allowed_jwt_alg(*a)) {
                return fail<jwk>(why, "alg is not RS256/RS384/RS512");
            }
            alg = *a;
        }
        const std::string* kid = string_member(entry, "kid");
        if (kid == nullptr || kid->empty()) {
            return fail<jwk>(why, "missing kid");
        }
        const std::string* n64 = string_member(entry, "n");
        const std::string* e64 = string_member(entry, "e");
        if (n64 == nullptr || e64 == nullptr) {
            return fail<jwk>(why, "missing n or e");
        }
        const auto n = base64url_decode(*n64);
        const auto e = base64url_decode(*e64);
        // The size bound keeps BN_bin2bn's int length safe before the precise check below.
        if (!n || !e || n->empty() || e->empty() || n->size() > 2048 || e->size() > 64) {
            return fail<jwk>(why, "n or e is not valid base64url");
        }
        evp_pkey_ptr key = rsa_from_components(*n, *e);
        if (!key) {
            return fail<jwk>(why, "OpenSSL rejected the RSA key");
        }
        const char* bad = nullptr;
        if (!acceptable_rsa(key.get(), bad)) {
            return fail<jwk>(why, bad);
        }
        return jwk(*kid, std::move(alg), std::move(key));
    } catch (...) {
        return fail<jwk>(why, "out of memory");
    }
}

std::optional<jwk> jwk::from_pem(std::string_view pem, std::string& why) noexcept {
    try {
        // Find the first BEGIN line whose label we accept, and its matching END line.
        constexpr std::string_view labels[] = {"PUBLIC KEY", "RSA PUBLIC KEY"};
        for (const std::string_view label : labels) {
            const std::string begin = "-----BEGIN " + std::string(label) + "-----";
            const std::string end = "-----END " + std::string(label) + "-----";
            const auto b = pem.find(begin);
            if (b == std::string_view::npos) {
                continue;
            }
            const auto body_start = b + begin.size();
            const auto e = pem.find(end, body_start);
            if (e == std::string_view::npos) {
                return fail<jwk>(why, "PEM END line missing");
            }
            const auto der = pem_body_der(pem.substr(body_start, e - body_start));
            if (!der) {
                return fail<jwk>(why, "PEM body is not base64");
            }
            const auto* p = reinterpret_cast<const unsigned char*>(der->data());
            const auto len = static_cast<long>(der->size());
            // SPKI carries its algorithm OID; PKCS#1 is a bare RSAPublicKey SEQUENCE.
            evp_pkey_ptr key(label == "PUBLIC KEY" ? d2i_PUBKEY(nullptr, &p, len)
                                                   : d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, len));
            if (!key || p != reinterpret_cast<const unsigned char*>(der->data()) + len) {
                return fail<jwk>(why, "PEM does not hold a public key");
            }
            const char* bad = nullptr;
            if (!acceptable_rsa(key.get(), bad)) {
                return fail<jwk>(why, bad);
            }
            return jwk({}, {}, std::move(key));
        }
        return fail<jwk>(why, "no BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY block");
    } catch (...) {
        return fail<jwk>(why, "out of memory");
    }
}

bool jwk::verify(std::string_view alg, std::string_view signing_input,
                 std::string_view signature) const noexcept {
    const EVP_MD* md = digest_for(alg);
    // PKCS#1 v1.5 signatures are exactly the modulus length (RFC 8017 §8.2.2 step 1).
    if (md == nullptr || !key_ ||
        signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key_.get()))) {
        return false;
    }
    const std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx(EVP_MD_CTX_new());
    const int index = prepared_index(alg);
    const EVP_MD_CTX* tmpl =
        prepared_ && index >= 0 ? prepared_->ctx[static_cast<std::size_t>(index)] : nullptr;
    // A failed copy falls back to a full initialization (a fresh context), so that an OpenSSL
    // failure there never turns into a refusal of a valid token.
    bool ready = ctx && tmpl != nullptr && EVP_MD_CTX_copy_ex(ctx.get(), tmpl) == 1;
    if (ctx && !ready) {
        ERR_clear_error();
        ready = EVP_MD_CTX_reset(ctx.get()) == 1 && init_verify(ctx.get(), md, key_.get());
    }
    const bool ok =
        ready && EVP_DigestVerify(
                     ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                     signature.size(), reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) == 1;
    if (!ok) {
        ERR_clear_error();
    }
    return ok;
}

}  // namespace clerk::core
