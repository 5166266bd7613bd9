#include "proxy/digester.hpp"

#include <array>
#include <stdexcept>

namespace pullthrough::proxy {

Digester::Digester(std::string_view algorithm) : algorithm_(algorithm), context_(EVP_MD_CTX_new()) {
  const EVP_MD* md = nullptr;
  if (algorithm == "sha256") md = EVP_sha256();
  if (algorithm == "sha512") md = EVP_sha512();
  if (md == nullptr) throw std::invalid_argument("unsupported digest algorithm");
  if (!context_ || EVP_DigestInit_ex(context_.get(), md, nullptr) != 1) {
    throw std::runtime_error("cannot initialise " + algorithm_);
  }
}

void Digester::update(std::span<const std::uint8_t> bytes) {
  if (!bytes.empty()) EVP_DigestUpdate(context_.get(), bytes.data(), bytes.size());
}

std::string Digester::finish() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(context_.get(), hash.data(), &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = algorithm_ + ":";
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[hash[i] >> 4];
    out += kHex[hash[i] & 0xF];
  }
  return out;
}

std::string_view digest_algorithm(std::string_view digest) {
  auto colon = digest.find(':');
  return colon == std::string_view::npos ? std::string_view{} : digest.substr(0, colon);
}

}  // namespace pullthrough::proxy
