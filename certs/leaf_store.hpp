// Leaf certificates for the intercepted names, issued on first use, kept in memory and on disk
// (<state_dir>/ca/leaves/<name>.pem, mode 0600) so that a restart does not mint new ones, and
// renewed well before they expire.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "certs/authority.hpp"

namespace pullthrough::certs {

struct LeafPolicy {
  // Under 90 days in all, counting the hour of clock-skew allowance before `now`.
  std::chrono::seconds validity = std::chrono::hours(24 * 89);
  // A leaf with less than this left is replaced: a month of margin for clocks, clients that
  // cache connections, and appliances that were switched off for a while.
  std::chrono::seconds renew_before = std::chrono::hours(24 * 30);
};

class LeafStore {
 public:
  // `ca` must outlive the store. `dir` is created (0700) on first issue.
  LeafStore(const CertificateAuthority& ca, std::filesystem::path dir, LeafPolicy policy = {});

  // The certificate for `name` (a lower-case intercepted name): from memory, else from disk if it
  // is ours, for that name and not due for renewal, else newly issued and saved. Safe to call from
  // any thread; the returned pair is immutable and stays valid while held. Throws CaError when a
  // new leaf cannot be issued or saved.
  std::shared_ptr<const KeyedCertificate> get(std::string_view name, SystemTime now);

  // True when a leaf with `info` must be replaced at `now`.
  bool needs_renewal(const CertificateInfo& info, SystemTime now) const;

  // The leaves saved on disk, for `pullthrough ca info`.
  std::vector<CertificateInfo> saved() const;

 private:
  struct Entry {
    std::shared_ptr<const KeyedCertificate> leaf;
    SystemTime not_after;
  };

  std::shared_ptr<const KeyedCertificate> load_saved(const std::string& name, SystemTime now);

  const CertificateAuthority& ca_;
  std::filesystem::path dir_;
  LeafPolicy policy_;
  std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace pullthrough::certs
