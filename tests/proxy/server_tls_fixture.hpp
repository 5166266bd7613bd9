// The TLS a proxy test's front door presents: a CA made for the test in a scratch directory, its
// leaf store, and a ServerTls that admits the names the test's configuration intercepts.
#pragma once

#include <chrono>
#include <filesystem>
#include <string_view>

#include "certs/authority.hpp"
#include "certs/leaf_store.hpp"
#include "config/config.hpp"
#include "proxy/server_tls.hpp"

namespace pullthrough::proxy::testing {

struct TestServerTls {
  // `config` is read at each handshake, so a test may fill it in after this is built.
  TestServerTls(const config::Config& config, const std::filesystem::path& dir)
      : ca(certs::CertificateAuthority::load_or_create(dir / "ca", "box",
                                                       std::chrono::system_clock::now())),
        leaves(ca, dir / "ca" / "leaves"),
        tls(leaves,
            [&config](std::string_view name) { return config.find_registry(name) != nullptr; }) {}

  certs::CertificateAuthority ca;
  certs::LeafStore leaves;
  ServerTls tls;
};

}  // namespace pullthrough::proxy::testing
