#include "proxy/untrusted_clients.hpp"

#include "core/asio.hpp"

#include <array>

#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace pullthrough::proxy {
namespace {

constexpr std::array<std::string_view, kCertificateAlerts> kNames = {
    "bad_certificate", "certificate_unknown", "unknown_ca"};

// OpenSSL reports a fatal alert received from the peer as reason SSL_AD_REASON_OFFSET + the
// alert's code (ssl3_read_bytes); an alert it sends itself carries the reason it had for sending
// it (SSL_R_CALLBACK_FAILED for an SNI the front door refuses, SSL_R_NO_SHARED_CIPHER, ...). So
// these three reasons name what the client said.
static_assert(SSL_R_SSLV3_ALERT_BAD_CERTIFICATE == SSL_AD_REASON_OFFSET + SSL_AD_BAD_CERTIFICATE);
static_assert(SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN ==
              SSL_AD_REASON_OFFSET + SSL_AD_CERTIFICATE_UNKNOWN);
static_assert(SSL_R_TLSV1_ALERT_UNKNOWN_CA == SSL_AD_REASON_OFFSET + SSL_AD_UNKNOWN_CA);

}  // namespace

std::string_view to_string(CertificateAlert alert) {
  return kNames[static_cast<std::size_t>(alert)];
}

std::optional<CertificateAlert> parse_certificate_alert(std::string_view text) {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == text) return static_cast<CertificateAlert>(i);
  }
  return std::nullopt;
}

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
