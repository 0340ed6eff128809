#pragma once
// Incremental SHA-256 for tests that check large streamed bodies without keeping them.
#include <openssl/evp.h>

#include <cstddef>
#include <string>

namespace clerk::it {

class sha256_stream {
public:
    sha256_stream() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
    ~sha256_stream() { EVP_MD_CTX_free(ctx_); }
    sha256_stream(const sha256_stream&) = delete;
    sha256_stream& operator=(const sha256_stream&) = delete;
    void update(const void* d, std::size_t n) { EVP_DigestUpdate(ctx_, d, n); }
    /// Lower-case hex of the digest; call once.
    std::string hex() {
        unsigned char md[32];
        unsigned int len = 0;
        EVP_DigestFinal_ex(ctx_, md, &len);
        static constexpr char digits[] = "0123456789abcdef";
        std::string out;
        for (unsigned i = 0; i < len; ++i) {
            out.push_back(digits[md[i] >> 4]);
            out.push_back(digits[md[i] & 0xf]);
        }
        return out;
    }

private:
    EVP_MD_CTX* ctx_;
};

}  // namespace clerk::it
