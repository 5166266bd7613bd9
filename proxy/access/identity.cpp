#include "proxy/access/identity.hpp"

#include <algorithm>
#include <stdexcept>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

std::string base64(std::string_view text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(text.data()),
                                      static_cast<int>(text.size()));
  out.resize(static_cast<std::size_t>(std::max(written, 0)));
  return out;
}

}  // namespace

std::string ClientIdentity::log_text() const {
  if (anonymous) return "anonymous";
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out;
  // 6 bytes = 12 hex digits: enough to tell clients apart in a log, too few to stand for them.
  for (std::size_t i = 0; i < 6; ++i) {
    out += kHex[hash[i] >> 4];
    out += kHex[hash[i] & 0x0F];
  }
  return out;
}

IdentityHasher::IdentityHasher() {
  if (RAND_bytes(key_.data(), static_cast<int>(key_.size())) != 1) {
    throw std::runtime_error("no random bytes for the client identity key");
  }
}

IdentityHasher::IdentityHasher(const std::array<std::uint8_t, 32>& key) : key_(key) {}

ClientIdentity IdentityHasher::of_authorization(std::string_view authorization) const {
  authorization = trim(authorization);
  ClientIdentity identity;
  if (authorization.empty()) return identity;

  // RFC 9110 11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ], the scheme
  // case-insensitive. The scheme is lower-cased and the blanks after it folded to one space; the
  // rest is the credential and is hashed as sent.
  const std::size_t scheme_end = std::min(authorization.find_first_of(" \t"), authorization.size());
  std::string normalised = core::ascii_lower(authorization.substr(0, scheme_end));
  const std::string_view rest = trim(authorization.substr(scheme_end));
  if (!rest.empty()) {
    normalised += ' ';
    normalised += rest;
  }

  unsigned int length = 0;
  const unsigned char* done = HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
                                   reinterpret_cast<const unsigned char*>(normalised.data()),
                                   normalised.size(), identity.hash.data(), &length);
  // HMAC fails only when OpenSSL cannot allocate; a client must then not be taken for anyone,
  // least of all for another client with the same all-zero hash.
  if (done == nullptr || length != identity.hash.size()) {
    throw std::runtime_error("HMAC-SHA-256 of a client identity failed");
  }
  identity.anonymous = false;
  return identity;
}

ClientIdentity IdentityHasher::of_password(std::string_view user, std::string_view password) const {
  std::string pair(user);
  pair += ':';
  pair += password;
  return of_authorization("Basic " + base64(pair));
}

}  // namespace pullthrough::proxy
