// The TLS alerts (RFC 8446 section 6.2) a client sends when it does not trust the certificate the
// front door presented: what the learned fallback for machines without the appliance's CA keys on.
// Which one depends on the client's TLS library: Go's crypto/tls (docker, containerd, podman,
// skopeo) sends bad_certificate for an unknown authority, OpenSSL (curl) unknown_ca, Java
// certificate_unknown.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace pullthrough::health {

enum class CertificateAlert : std::uint8_t { bad_certificate, certificate_unknown, unknown_ca };

inline constexpr std::array<CertificateAlert, 3> kCertificateAlerts{
    CertificateAlert::bad_certificate, CertificateAlert::certificate_unknown,
    CertificateAlert::unknown_ca};

// The alert's name in RFC 8446: "bad_certificate", "certificate_unknown", "unknown_ca".
constexpr std::string_view to_string(CertificateAlert alert) {
  switch (alert) {
    case CertificateAlert::bad_certificate:
      return "bad_certificate";
    case CertificateAlert::certificate_unknown:
      return "certificate_unknown";
    case CertificateAlert::unknown_ca:
      return "unknown_ca";
  }
  return "unknown_ca";
}

constexpr std::optional<CertificateAlert> parse_certificate_alert(std::string_view name) {
  for (auto alert : kCertificateAlerts) {
    if (to_string(alert) == name) return alert;
  }
  return std::nullopt;
}

constexpr std::size_t index_of(CertificateAlert alert) { return static_cast<std::size_t>(alert); }

}  // namespace pullthrough::health
