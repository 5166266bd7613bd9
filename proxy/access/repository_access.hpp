// What upstream has said about access to repositories, remembered briefly:
//  - visibility: a repository is public when the appliance's anonymous access can read it (a
//    HEAD of one of its manifests answered 200 with no credentials). Then anything cached from it
//    may be served to anyone. Rechecked once older than the registry's tag TTL; until then, and
//    while upstream cannot be reached, the last answer stands.
//  - grants: upstream let `identity` read `repository` (a request with that client's own
//    Authorization answered 200). Cached content of a repository that is not public is served to
//    a client only under a grant, which lasts for the token's lifetime or kMaxGrant, whichever is
//    shorter, and is withdrawn when upstream refuses that client later.
// Both maps are bounded: past the bound, the repository checked longest ago goes, and of the
// grants the expired ones and then the one expiring soonest. Thread-safe.
#pragma once

#include <utility>

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <set>
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
  // Checked now, or at `checked` (an answer remembered from before a restart).
  void record_visibility(const std::string& host, const std::string& repository, bool is_public,
                         std::optional<core::Clock::TimePoint> checked = std::nullopt);

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

  // Grants held, expired ones included until a new grant sweeps them out.
  std::size_t grants() const;
  std::size_t repositories() const;

 private:
  struct Visible {
    bool is_public = false;
    core::Clock::TimePoint checked{};
  };
  using TimeIndex = std::set<std::pair<core::Clock::TimePoint, std::string>>;

  const core::Clock& clock_;
  std::size_t max_repositories_;
  std::size_t max_grants_;
  mutable std::mutex mutex_;
  // By host + '/' + repository, and the same keys by when they were checked.
  std::map<std::string, Visible> repositories_;
  TimeIndex repositories_by_check_;
  // Expiry by identity hash + host + '/' + repository, and the same keys by expiry.
  std::map<std::string, core::Clock::TimePoint> grants_;
  TimeIndex grants_by_expiry_;
};

}  // namespace pullthrough::proxy
