// Helpers shared by the certs tests: a scratch directory and OpenSSL verification.
#pragma once

#include <chrono>
#include <filesystem>
#include <random>
#include <string>

#include "certs/authority.hpp"

namespace pullthrough::certs::testing {

class ScratchDir {
 public:
  ScratchDir() {
    std::random_device random;
    path_ = std::filesystem::temp_directory_path() /
            ("pullthrough-test-" + std::to_string(random()) + std::to_string(random()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A fixed "now" so that validity arithmetic is exact.
inline SystemTime fixed_now() {
  return std::chrono::system_clock::from_time_t(1'800'000'000);  // 2027-01-15
}

// X509_verify_cert of `leaf` against `ca` as a TLS server certificate for `host` at `when`:
// returns "" when it verifies, else OpenSSL's reason.
std::string verify_server_certificate(const X509& ca, const X509& leaf, const std::string& host,
                                      SystemTime when);

// Writes PEM text to a file (mode 0600).
void write_text(const std::filesystem::path& path, const std::string& text);

}  // namespace pullthrough::certs::testing
