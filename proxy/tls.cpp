#include "proxy/tls.hpp"

#include <boost/asio/ssl/context.hpp>

namespace clerk::proxy {
namespace ssl = boost::asio::ssl;

std::shared_ptr<ssl::context> make_server_tls_context(const config::tls_config& cfg,
                                                      std::string& error) {
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
    return ctx;
}

std::shared_ptr<ssl::context> make_upstream_tls_context(const config::upstream_config& cfg,
                                                        std::string& error) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    boost::system::error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                     ec);
    if (!cfg.tls_verify) {
        ctx->set_verify_mode(ssl::verify_none, ec);
        return ctx;
    }
    ctx->set_default_verify_paths(ec);
    if (!cfg.ca_file.empty()) {
        ctx->load_verify_file(cfg.ca_file, ec);
        if (ec) {
            error = "upstream.ca_file " + cfg.ca_file + ": " + ec.message();
            return nullptr;
        }
    }
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    return ctx;
}

}  // namespace clerk::proxy
