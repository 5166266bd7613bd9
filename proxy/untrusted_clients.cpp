#include "proxy/untrusted_clients.hpp"

#include "core/asio.hpp"

#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace pullthrough::proxy {
namespace {

// OpenSSL reports a fatal alert received from the peer as reason SSL_AD_REASON_OFFSET + the
// alert's code (ssl3_read_bytes); an alert it sends itself carries the reason it had for sending
// it (SSL_R_CALLBACK_FAILED for an SNI the front door refuses, SSL_R_NO_SHARED_CIPHER, ...). So
// these three reasons name what the client said.
static_assert(SSL_R_SSLV3_ALERT_BAD_CERTIFICATE == SSL_AD_REASON_OFFSET + SSL_AD_BAD_CERTIFICATE);
static_assert(SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN ==
              SSL_AD_REASON_OFFSET + SSL_AD_CERTIFICATE_UNKNOWN);
static_assert(SSL_R_TLSV1_ALERT_UNKNOWN_CA == SSL_AD_REASON_OFFSET + SSL_AD_UNKNOWN_CA);

}  // namespace

std::optional<CertificateAlert> certificate_alert(
    const boost::system::error_code& handshake_error) {
  // Asio gives an SSL_ERROR_SSL failure as the first packed ERR code of the thread's queue, cast
  // to int, in its ssl category; a cut connection or a timeout comes in other categories.
  if (handshake_error.category() != asio::error::get_ssl_category()) return std::nullopt;
  const auto code = static_cast<unsigned long>(static_cast<unsigned int>(handshake_error.value()));
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) return std::nullopt;
  switch (ERR_GET_REASON(code)) {
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
      return CertificateAlert::bad_certificate;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
      return CertificateAlert::certificate_unknown;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      return CertificateAlert::unknown_ca;
    default:
      return std::nullopt;
  }
}

}  // namespace pullthrough::proxy
