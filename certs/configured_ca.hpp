// Where the configuration puts the CA and its leaves.
#pragma once

#include <filesystem>

#include "certs/authority.hpp"
#include "config/config.hpp"

namespace pullthrough::certs {

// <state_dir>/ca: the generated CA's directory.
std::filesystem::path generated_ca_dir(const config::Config& config);
// <state_dir>/ca/leaves, for either kind of CA.
std::filesystem::path leaves_dir(const config::Config& config);

// The operator's CA when ca.cert_file is set, else the generated one (created on first use).
CertificateAuthority open_configured_ca(const config::Config& config, SystemTime now);

}  // namespace pullthrough::certs
