// certs/: the local CA that clients trust once, the leaf certificates it signs for the
// intercepted names, and the page and script that hand the CA to clients.
//
// The appliance's local certificate authority: generated once under <state_dir>/ca/ (or the
// operator's own), and used to sign short-lived leaf certificates for the intercepted names.
#pragma once

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/openssl.hpp"

namespace pullthrough::certs {

using SystemTime = std::chrono::system_clock::time_point;

// A problem with the CA that stops the appliance from starting; what() says what and where.
class CaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CertificateInfo {
  std::string subject;  // one line, RFC 2253
  std::string issuer;
  std::string serial_hex;
  std::string sha256_fingerprint;  // "AB:CD:..." as openssl x509 -fingerprint prints it
  SystemTime not_before;
  SystemTime not_after;
  std::vector<std::string> dns_names;  // subjectAltName DNS entries
  bool is_ca = false;
};

CertificateInfo describe(const X509& cert);

// "2036-11-27 01:02:03 UTC".
std::string format_utc(SystemTime when);

// A key pair and the certificate for it.
struct KeyedCertificate {
  core::X509Ptr cert;
  core::EvpPkeyPtr key;
};

class CertificateAuthority {
 public:
  static constexpr auto kValidity = std::chrono::hours(24 * 3650);  // ten years

  // <dir>/ca.crt and <dir>/ca.key: loaded when both exist, generated (EC P-256, ten years, the
  // subject naming host_name) when neither does. The directory is made mode 0700 and the key 0600.
  // One without the other is an error rather than a silent new CA, which every client would have
  // to trust again.
  static CertificateAuthority load_or_create(const std::filesystem::path& dir,
                                             std::string_view host_name, SystemTime now);

  // The operator's own CA (ca.cert_file, ca.key_file). The key must match the certificate, and
  // the certificate must be a CA allowed to sign certificates and valid at `now`.
  static CertificateAuthority load_files(const std::string& cert_file, const std::string& key_file,
                                         SystemTime now);

  // A serverAuth leaf for exactly one DNS name (subjectAltName), EC P-256, valid from an hour
  // before `now` (clock skew between appliance and clients) for `validity`.
  KeyedCertificate issue(std::string_view dns_name, SystemTime now,
                         std::chrono::seconds validity) const;

  // True when `cert` carries this CA's signature.
  bool signed_by_us(const X509& cert) const;

  const X509& certificate() const { return *ca_.cert; }
  std::string certificate_pem() const { return core::to_pem(*ca_.cert); }
  std::string certificate_der() const { return core::to_der(*ca_.cert); }
  // True when this call to load_or_create generated the CA.
  bool generated() const { return generated_; }

 private:
  CertificateAuthority(KeyedCertificate ca, bool generated)
      : ca_(std::move(ca)), generated_(generated) {}

  KeyedCertificate ca_;
  bool generated_ = false;
};

// Writes `content` to `path` atomically (temporary file, fsync, rename) with `mode`.
void write_file_atomically(const std::filesystem::path& path, std::string_view content,
                           unsigned mode);

}  // namespace pullthrough::certs
