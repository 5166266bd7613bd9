// Which failed TLS handshakes mean "this client does not trust the appliance's CA": the client
// received the certificate the front door issued, could not verify it, and said so with a fatal
// alert (RFC 8446 section 6.2, RFC 5246 section 7.2.2). Such a client has not installed the
// appliance's CA, so intercepting its registry names only breaks its pulls.
//
// Clients name that failure with different alerts:
//   - Go's crypto/tls (docker, skopeo, podman, containerd) sends bad_certificate for any failed
//     verification of the server's chain, an unknown authority included;
//   - OpenSSL, and so curl and most C clients, sends unknown_ca
//     (X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY in ssl_x509err2alert);
//   - Java (SunJSSE) sends certificate_unknown.
// Every other failure (no ClientHello, a timeout, a reset, a version or cipher the two sides do
// not share, an alert the front door sent itself, an expired certificate) says nothing about trust.
#pragma once

#include <optional>

#include <boost/system/error_code.hpp>

#include "health/certificate_alert.hpp"

namespace pullthrough::proxy {

// The DNS side keys its bypass on the same three alerts.
using health::CertificateAlert;
using health::parse_certificate_alert;
using health::to_string;

// The alert a failed server-side handshake received from the client, when it is one of the three
// that mean "I do not trust your certificate"; nullopt for every other failure, and for success.
// `handshake_error` is what Asio's async_handshake gave.
std::optional<CertificateAlert> certificate_alert(const boost::system::error_code& handshake_error);

}  // namespace pullthrough::proxy
