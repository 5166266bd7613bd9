#include "proxy/server_tls.hpp"

#include <openssl/err.h>

#include "core/logging.hpp"
#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

// TLS 1.2: forward secret AEAD suites only; the leaves are ECDSA, so only ECDSA suites apply.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305";
constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char kSessionContext[] = "pullthrough";

int select_alpn(SSL*, const unsigned char** out, unsigned char* out_length,
                const unsigned char* offered, unsigned int offered_length, void*) {
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, kAlpnHttp11, sizeof kAlpnHttp11, offered,
                            offered_length) == OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  // RFC 7301 section 3.2: no protocol in common is a no_application_protocol alert.
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void check(int ok, const char* what) {
  if (ok != 1)
    throw certs::CaError(std::string("TLS setup: ") + what + ": " + core::take_openssl_errors());
}

}  // namespace

std::string server_name_of(SSL* ssl) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return {};
  return core::ascii_lower(name);
}

ServerTls::ServerTls(certs::LeafStore& leaves, std::function<bool(std::string_view)> intercepted)
    : leaves_(leaves),
      intercepted_(std::move(intercepted)),
      context_(boost::asio::ssl::context::tls_server) {
  SSL_CTX* ctx = context_.native_handle();
  check(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), "minimum version");
  check(SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION), "maximum version");
  check(SSL_CTX_set_cipher_list(ctx, kTls12Ciphers), "TLS 1.2 ciphers");
  check(SSL_CTX_set_ciphersuites(ctx, kTls13Suites), "TLS 1.3 suites");
  check(SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384"), "groups");
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Resumption: TLS 1.3 tickets (on by default) and a TLS 1.2 session cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, 20000);
  check(SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1),
        "session id context");
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
  // Called for every ClientHello, with or without SNI (OpenSSL >= 1.1.1).
  SSL_CTX_set_tlsext_servername_callback(ctx, &ServerTls::on_server_name);
  SSL_CTX_set_tlsext_servername_arg(ctx, this);
}

int ServerTls::on_server_name(SSL* ssl, int* alert, void* self) {
  return static_cast<ServerTls*>(self)->choose_certificate(ssl, alert);
}

int ServerTls::choose_certificate(SSL* ssl, int* alert) {
  std::string name = server_name_of(ssl);
  if (name.empty()) {
    counters_.no_name_refused.add();
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  if (!intercepted_(name)) {
    counters_.names_refused.add();
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  try {
    auto leaf = leaves_.get(name, std::chrono::system_clock::now());
    // Takes its own references to the certificate and key.
    if (SSL_use_cert_and_key(ssl, leaf->cert.get(), leaf->key.get(), nullptr, 1) != 1) {
      throw certs::CaError("cannot attach the certificate: " + core::take_openssl_errors());
    }
  } catch (const certs::CaError& e) {
    counters_.issue_failures.add();
    core::logger("certs")->error("no certificate for {}: {}", name, e.what());
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  counters_.certificates_served.add();
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace pullthrough::proxy
