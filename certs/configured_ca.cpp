#include "certs/configured_ca.hpp"

#include <array>

#include <unistd.h>

namespace pullthrough::certs {

std::filesystem::path generated_ca_dir(const config::Config& config) {
  return std::filesystem::path(config.state_dir) / "ca";
}

std::filesystem::path leaves_dir(const config::Config& config) {
  return generated_ca_dir(config) / "leaves";
}

CertificateAuthority open_configured_ca(const config::Config& config, SystemTime now) {
  if (!config.ca.cert_file.empty()) {
    return CertificateAuthority::load_files(config.ca.cert_file, config.ca.key_file, now);
  }
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  return CertificateAuthority::load_or_create(generated_ca_dir(config), host.data(), now);
}

}  // namespace pullthrough::certs
