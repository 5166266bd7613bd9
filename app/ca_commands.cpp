#include "app/ca_commands.hpp"

#include <filesystem>
#include <ostream>

#include "certs/configured_ca.hpp"
#include "certs/leaf_store.hpp"

namespace pullthrough::app {
int ca_export(const config::Config& config, bool der, std::ostream& out, std::ostream& err) {
  try {
    auto ca = certs::open_configured_ca(config, std::chrono::system_clock::now());
    out << (der ? ca.certificate_der() : ca.certificate_pem());
    out.flush();
    return 0;
  } catch (const certs::CaError& e) {
    err << "pullthrough: " << e.what() << "\n";
    return 1;
  }
}

int ca_info(const config::Config& config, std::ostream& out, std::ostream& err) {
  bool own = !config.ca.cert_file.empty();
  auto dir = certs::generated_ca_dir(config);
  if (!own && !std::filesystem::exists(dir / "ca.crt")) {
    err << "pullthrough: no CA under " << dir.string()
        << " yet: `pullthrough serve` or `pullthrough ca export` creates it\n";
    return 1;
  }
  try {
    auto now = std::chrono::system_clock::now();
    auto ca = certs::open_configured_ca(config, now);
    auto info = certs::describe(ca.certificate());
    out << "CA:       " << (own ? config.ca.cert_file : (dir / "ca.crt").string())
        << (own ? " (ca.cert_file)" : " (generated)") << "\n"
        << "Subject:  " << info.subject << "\n"
        << "SHA-256:  " << info.sha256_fingerprint << "\n"
        << "Valid:    " << certs::format_utc(info.not_before) << " to "
        << certs::format_utc(info.not_after) << "\n";
    certs::LeafStore leaves(ca, certs::leaves_dir(config));
    auto saved = leaves.saved();
    out << "Leaves:   " << saved.size() << " in " << certs::leaves_dir(config).string() << "\n";
    for (const auto& leaf : saved) {
      std::string names;
      for (const auto& name : leaf.dns_names) names += (names.empty() ? "" : ",") + name;
      bool ours = leaf.issuer == info.subject;
      out << "  " << names << "  expires " << certs::format_utc(leaf.not_after) << "  serial "
          << leaf.serial_hex
          << (ours ? (leaves.needs_renewal(leaf, now) ? "  (renewed at next use)" : "")
                   : "  (from another CA: replaced at next use)")
          << "\n";
    }
    return 0;
  } catch (const certs::CaError& e) {
    err << "pullthrough: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace pullthrough::app
