// What upstream has said about access to repositories, remembered briefly:
//  - visibility: a repository is public when the appliance's anonymous access can read it (a
//    HEAD of one of its manifests answered 200 with no credentials). Then anything cached from it
//    may be served to anyone. Rechecked once older than the registry's tag TTL; until then, and
//    while upstream cannot be reached, the last answer stands.
//  - grants: upstream let `identity` read `repository` (a request with that client's own
//    Authorization answered 200). Cached content of a repository that is not public is served to
//    a client only under a grant, which lasts for the token's lifetime or kMaxGrant, whichever is
//    shorter, and is withdrawn when upstream refuses that client later.
// Both maps are bounded: past the bound, expired entries go first, then the oldest. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "core/clock.hpp"
#include "proxy/access/identity.hpp"

namespace pullthrough::proxy {

enum class Visibility : std::uint8_t { unknown, public_repository, restricted };

class RepositoryAccess {
 public:
  static constexpr std::chrono::minutes kMaxGrant{5};

  // `clock` must outlive this.
  explicit RepositoryAccess(const core::Clock& clock, std::size_t max_repositories = 65536,
                            std::size_t max_grants = 262144);

  struct Known {
    Visibility visibility = Visibility::unknown;
    bool fresh = false;  // checked less than `ttl` ago
  };
  // What is known of `repository` of registry `host`; fresh when checked within `ttl`.
  Known visibility(const std::string& host, const std::string& repository,
                   std::chrono::nanoseconds ttl) const;
  void record_visibility(const std::string& host, const std::string& repository, bool is_public);

  // Whether `identity` holds an unexpired grant for `repository` of `host`. Never true for the
  // anonymous client: what it may read is what is public.
  bool granted(const ClientIdentity& identity, const std::string& host,
               const std::string& repository) const;
  // Upstream let `identity` read the repository; `lifetime` is what is left of the token it
  // presented (none known: kMaxGrant). Ignored for the anonymous client.
  void grant(const ClientIdentity& identity, const std::string& host, const std::string& repository,
             std::optional<std::chrono::seconds> lifetime = std::nullopt);
  // Upstream refused `identity` for the repository: the grant ends now.
  void revoke(const ClientIdentity& identity, const std::string& host,
              const std::string& repository);

  std::size_t grants() const;

 private:
  struct Visible {
    bool is_public = false;
    core::Clock::TimePoint checked{};
  };
  const core::Clock& clock_;
  std::size_t max_repositories_;
  std::size_t max_grants_;
  mutable std::mutex mutex_;
  std::map<std::string, Visible> repositories_;               // by host + '/' + repository
  std::map<std::string, core::Clock::TimePoint> grants_;       // by hash + host + '/' + repository
};

}  // namespace pullthrough::proxy
