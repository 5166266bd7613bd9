#include "certs/leaf_store.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <openssl/err.h>

namespace pullthrough::certs {
namespace {

namespace fs = std::filesystem;

std::string read_small_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

LeafStore::LeafStore(const CertificateAuthority& ca, fs::path dir, LeafPolicy policy)
    : ca_(ca), dir_(std::move(dir)), policy_(policy) {}

bool LeafStore::needs_renewal(const CertificateInfo& info, SystemTime now) const {
  return info.not_after - now < policy_.renew_before;
}

std::shared_ptr<const KeyedCertificate> LeafStore::load_saved(const std::string& name,
                                                              SystemTime now) {
  auto pem = read_small_file(dir_ / (name + ".pem"));
  if (pem.empty()) return nullptr;
  auto cert = core::certificate_from_pem(pem);
  auto key = core::private_key_from_pem(pem);
  if (!cert || !key || X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  // A file left by another CA (the operator switched CAs) or for another name is not ours to use.
  auto info = describe(*cert);
  if (!ca_.signed_by_us(*cert) || info.dns_names != std::vector<std::string>{name} ||
      needs_renewal(info, now) || now < info.not_before) {
    return nullptr;
  }
  return std::make_shared<const KeyedCertificate>(
      KeyedCertificate{std::move(cert), std::move(key)});
}

std::shared_ptr<const KeyedCertificate> LeafStore::get(std::string_view name, SystemTime now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(name);
  if (it != entries_.end() && it->second.not_after - now >= policy_.renew_before) {
    return it->second.leaf;
  }
  std::string key(name);
  auto leaf = load_saved(key, now);
  if (!leaf) {
    auto issued = ca_.issue(name, now, policy_.validity);
    std::error_code ec;
    fs::create_directories(dir_, ec);
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::replace, ec);
    write_file_atomically(dir_ / (key + ".pem"),
                          core::to_pem(*issued.cert) + core::to_pem(*issued.key), 0600);
    leaf = std::make_shared<const KeyedCertificate>(std::move(issued));
  }
  auto not_after = describe(*leaf->cert).not_after;
  entries_[key] = Entry{leaf, not_after};
  return leaf;
}

std::vector<CertificateInfo> LeafStore::saved() const {
  std::vector<CertificateInfo> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (entry.path().extension() != ".pem") continue;
    auto cert = core::certificate_from_pem(read_small_file(entry.path()));
    if (cert) out.push_back(describe(*cert));
  }
  std::sort(out.begin(), out.end(), [](const CertificateInfo& a, const CertificateInfo& b) {
    return a.dns_names < b.dns_names;
  });
  return out;
}

}  // namespace pullthrough::certs
