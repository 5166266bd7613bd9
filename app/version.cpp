#include "app/version.hpp"

#include <ares.h>
#include <boost/version.hpp>
#include <openssl/crypto.h>
#include <spdlog/version.h>

#include "dns/codec_info.hpp"

#ifndef PULLTHROUGH_VERSION
#error "PULLTHROUGH_VERSION is set by CMake"
#endif
#ifndef PULLTHROUGH_GIT_COMMIT
#error "PULLTHROUGH_GIT_COMMIT is set by CMake"
#endif

namespace pullthrough::app {

std::string version_string() {
  return std::string(PULLTHROUGH_VERSION) + " (" + PULLTHROUGH_GIT_COMMIT + ")";
}

std::string version_report() {
  std::string out = "pullthrough " + version_string() + "\n";
  out += std::string("  OpenSSL   ") + OpenSSL_version(OPENSSL_VERSION_STRING) + "\n";
  out += std::string("  c-ares    ") + ares_version(nullptr) + "\n";
  out += "  ldns      " + dns::ldns_version() + "\n";
  out += "  Boost     " + std::to_string(BOOST_VERSION / 100000) + "." +
         std::to_string(BOOST_VERSION / 100 % 1000) + "." + std::to_string(BOOST_VERSION % 100) +
         "\n";
  out += "  spdlog    " + std::to_string(SPDLOG_VER_MAJOR) + "." +
         std::to_string(SPDLOG_VER_MINOR) + "." + std::to_string(SPDLOG_VER_PATCH) + "\n";
  return out;
}

}  // namespace pullthrough::app
