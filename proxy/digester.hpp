// Computes an OCI digest ("sha256:<hex>" or "sha512:<hex>") over bytes as they stream past, with
// OpenSSL's EVP interface.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/openssl.hpp"

namespace pullthrough::proxy {

class Digester {
 public:
  // `algorithm` is "sha256" or "sha512" (what check_digest() accepts); throws std::invalid_argument
  // otherwise.
  explicit Digester(std::string_view algorithm);
  void update(std::span<const std::uint8_t> bytes);
  // "<algorithm>:<lower-case hex>". Call once.
  std::string finish();

 private:
  std::string algorithm_;
  core::EvpMdCtxPtr context_;
};

// The algorithm part of a digest ("sha256" of "sha256:abc..."); empty when there is no colon.
std::string_view digest_algorithm(std::string_view digest);

}  // namespace pullthrough::proxy
