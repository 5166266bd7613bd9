#include "proxy/access/repository_access.hpp"

#include <algorithm>

namespace pullthrough::proxy {
namespace {

// Host names cannot hold '/', so host + '/' + repository names one repository of one registry.
std::string repository_key(const std::string& host, const std::string& repository) {
  std::string key;
  key.reserve(host.size() + 1 + repository.size());
  key += host;
  key += '/';
  key += repository;
  return key;
}

// The hash has a fixed size, so it cannot run into the host that follows it.
std::string grant_key(const ClientIdentity& identity, const std::string& host,
                      const std::string& repository) {
  std::string key(identity.hash.begin(), identity.hash.end());
  key += repository_key(host, repository);
  return key;
}

}  // namespace

RepositoryAccess::RepositoryAccess(const core::Clock& clock, std::size_t max_repositories,
                                   std::size_t max_grants)
    : clock_(clock),
      max_repositories_(std::max<std::size_t>(max_repositories, 1)),
      max_grants_(std::max<std::size_t>(max_grants, 1)) {}

RepositoryAccess::Known RepositoryAccess::visibility(const std::string& host,
                                                     const std::string& repository,
                                                     std::chrono::nanoseconds ttl) const {
  const auto now = clock_.now();
  std::lock_guard lock(mutex_);
  const auto found = repositories_.find(repository_key(host, repository));
  if (found == repositories_.end()) return {};
  Known known;
  known.visibility =
      found->second.is_public ? Visibility::public_repository : Visibility::restricted;
  known.fresh = now - found->second.checked < ttl;
  return known;
}

void RepositoryAccess::record_visibility(const std::string& host, const std::string& repository,
                                         bool is_public,
                                         std::optional<core::Clock::TimePoint> checked) {
  const auto now = checked.value_or(clock_.now());
  std::string key = repository_key(host, repository);
  std::lock_guard lock(mutex_);
  if (auto old = repositories_.find(key); old != repositories_.end()) {
    repositories_by_check_.erase({old->second.checked, key});
    repositories_.erase(old);
  }
  // Forgetting a repository costs one more check upstream; the one checked longest ago is the
  // likeliest to need one anyway.
  while (repositories_.size() >= max_repositories_) {
    repositories_.erase(repositories_by_check_.begin()->second);
    repositories_by_check_.erase(repositories_by_check_.begin());
  }
  repositories_by_check_.emplace(now, key);
  repositories_.emplace(std::move(key), Visible{is_public, now});
}

bool RepositoryAccess::granted(const ClientIdentity& identity, const std::string& host,
                               const std::string& repository) const {
  if (identity.anonymous) return false;
  const auto now = clock_.now();
  std::lock_guard lock(mutex_);
  const auto found = grants_.find(grant_key(identity, host, repository));
  return found != grants_.end() && now < found->second;
}

void RepositoryAccess::grant(const ClientIdentity& identity, const std::string& host,
                             const std::string& repository,
                             std::optional<std::chrono::seconds> lifetime) {
  if (identity.anonymous) return;
  const auto now = clock_.now();
  const auto expires =
      now + std::min<std::chrono::seconds>(lifetime.value_or(kMaxGrant), kMaxGrant);
  std::string key = grant_key(identity, host, repository);
  std::lock_guard lock(mutex_);
  // A new grant replaces the old one, also when it is shorter: it is what upstream said last.
  if (auto old = grants_.find(key); old != grants_.end()) {
    grants_by_expiry_.erase({old->second, key});
    grants_.erase(old);
  }
  while (!grants_by_expiry_.empty() && grants_by_expiry_.begin()->first <= now) {
    grants_.erase(grants_by_expiry_.begin()->second);
    grants_by_expiry_.erase(grants_by_expiry_.begin());
  }
  if (expires <= now) return;
  while (grants_.size() >= max_grants_) {
    grants_.erase(grants_by_expiry_.begin()->second);
    grants_by_expiry_.erase(grants_by_expiry_.begin());
  }
  grants_by_expiry_.emplace(expires, key);
  grants_.emplace(std::move(key), expires);
}

void RepositoryAccess::revoke(const ClientIdentity& identity, const std::string& host,
                              const std::string& repository) {
  if (identity.anonymous) return;
  const std::string key = grant_key(identity, host, repository);
  std::lock_guard lock(mutex_);
  if (auto found = grants_.find(key); found != grants_.end()) {
    grants_by_expiry_.erase({found->second, key});
    grants_.erase(found);
  }
}

std::size_t RepositoryAccess::grants() const {
  std::lock_guard lock(mutex_);
  return grants_.size();
}

std::size_t RepositoryAccess::repositories() const {
  std::lock_guard lock(mutex_);
  return repositories_.size();
}

}  // namespace pullthrough::proxy
