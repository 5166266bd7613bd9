#include "test_support.hpp"

#include <fstream>

#include <openssl/x509_vfy.h>

namespace pullthrough::certs::testing {

std::string verify_server_certificate(const X509& ca, const X509& leaf, const std::string& host,
                                      SystemTime when) {
  core::X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), const_cast<X509*>(&ca));
  core::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), const_cast<X509*>(&leaf), nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set_time(param, std::chrono::system_clock::to_time_t(when));
  if (X509_verify_cert(ctx.get()) == 1) return "";
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  write_file_atomically(path, text, 0600);
}

}  // namespace pullthrough::certs::testing
