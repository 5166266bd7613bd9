#include "core/openssl.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>

namespace pullthrough::core {
namespace {

std::string drain(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

BioPtr memory_bio() { return BioPtr(BIO_new(BIO_s_mem())); }

BioPtr read_only_bio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

}  // namespace

std::string take_openssl_errors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!out.empty()) out += "; ";
    out += buffer;
  }
  return out;
}

std::string to_pem(const X509& cert) {
  auto bio = memory_bio();
  PEM_write_bio_X509(bio.get(), const_cast<X509*>(&cert));
  return drain(bio.get());
}

std::string to_pem(const EVP_PKEY& key) {
  auto bio = memory_bio();
  PEM_write_bio_PrivateKey(bio.get(), const_cast<EVP_PKEY*>(&key), nullptr, nullptr, 0, nullptr,
                           nullptr);
  return drain(bio.get());
}

std::string to_der(const X509& cert) {
  unsigned char* der = nullptr;
  int size = i2d_X509(const_cast<X509*>(&cert), &der);
  if (size <= 0) return {};
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(size));
  OPENSSL_free(der);
  return out;
}

X509Ptr certificate_from_pem(std::string_view pem) {
  if (pem.size() > static_cast<std::size_t>(INT32_MAX)) return nullptr;
  auto bio = read_only_bio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) ERR_clear_error();
  return cert;
}

EvpPkeyPtr private_key_from_pem(std::string_view pem) {
  if (pem.size() > static_cast<std::size_t>(INT32_MAX)) return nullptr;
  auto bio = read_only_bio(pem);
  // An empty passphrase callback: an encrypted key fails instead of prompting on the terminal.
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  if (!key) ERR_clear_error();
  return key;
}

}  // namespace pullthrough::core
