#include "proxy/net/tls.hpp"

#include <boost/asio/ssl/context.hpp>

#include <openssl/ssl.h>

namespace clerk::proxy {
namespace ssl = boost::asio::ssl;
namespace {

/// Chooses from the client's ALPN list (RFC 7301 wire format): h2 when HTTP/2 is on, else
/// http/1.1; no overlap -> no ALPN extension in the answer (the connection speaks HTTP/1.1).
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* arg) {
    const bool http2 = arg != nullptr;
    const auto find = [&](std::string_view want) -> bool {
        for (unsigned int i = 0; i < inlen;) {
            const unsigned len = in[i];
            if (i + 1 + len > inlen) {
                return false;
            }
            if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == want) {
                *out = in + i + 1;
                *outlen = static_cast<unsigned char>(len);
                return true;
            }
            i += 1 + len;
        }
        return false;
    };
    if ((http2 && find("h2")) || find("http/1.1")) {
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/// upstream.protocol h2 is negotiated by ALPN; http1 offers nothing (as before).
void offer_upstream_alpn(ssl::context& ctx, const config::upstream_config& cfg) {
    if (cfg.protocol == config::upstream_protocol::h2) {
        static constexpr unsigned char h2[] = {2, 'h', '2'};
        SSL_CTX_set_alpn_protos(ctx.native_handle(), h2, sizeof h2);
    }
}

}  // namespace

std::string_view alpn_selected(const void* ssl_handle) {
    const unsigned char* data = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(static_cast<const SSL*>(ssl_handle), &data, &len);
    return data == nullptr ? std::string_view()
                           : std::string_view(reinterpret_cast<const char*>(data), len);
}

std::shared_ptr<ssl::context> make_server_tls_context(const config::tls_config& cfg,
                                                      std::string& error, bool http2) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                         ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                     ec);
    ctx->use_certificate_chain_file(cfg.cert_file, ec);
    if (ec) {
        error = "tls.cert_file " + cfg.cert_file + ": " + ec.message();
        return nullptr;
    }
    ctx->use_private_key_file(cfg.key_file, ssl::context::pem, ec);
    if (ec) {
        error = "tls.key_file " + cfg.key_file + ": " + ec.message();
        return nullptr;
    }
    // The flag travels as the callback's argument: any non-null pointer means "offer h2".
    static int on = 1;
    SSL_CTX_set_alpn_select_cb(ctx->native_handle(), select_alpn, http2 ? &on : nullptr);
    return ctx;
}

std::shared_ptr<ssl::context> make_upstream_tls_context(const config::upstream_config& cfg,
                                                        std::string& error,
                                                        std::string_view ca_key) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    boost::system::error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                     ec);
    if (!cfg.tls_verify) {
        ctx->set_verify_mode(ssl::verify_none, ec);
        offer_upstream_alpn(*ctx, cfg);
        return ctx;
    }
    ctx->set_default_verify_paths(ec);
    if (!cfg.ca_file.empty()) {
        ctx->load_verify_file(cfg.ca_file, ec);
        if (ec) {
            error = std::string(ca_key) + " " + cfg.ca_file + ": " + ec.message();
            return nullptr;
        }
    }
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    offer_upstream_alpn(*ctx, cfg);
    return ctx;
}

}  // namespace clerk::proxy
