// The bearer tokens clients hold that the appliance knows the origin of:
//  - issued: a token the real token service issued, through the appliance's token endpoint, to a
//    client presenting some credentials. A request bearing it is that client's.
//  - offline: a token the appliance issued itself because the real token service could not be
//    reached. It stands for the credentials presented (unchecked: they were not verifiable), so it
//    unlocks only what upstream already granted those credentials within the remembered window,
//    and it is never sent upstream.
// Tokens are kept by a hash, never as text; both kinds are bounded in number and expire.
// Thread-safe.
#pragma once

#include <utility>

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "proxy/access/identity.hpp"

namespace pullthrough::proxy {

class TokenBook {
 public:
  // `clock` must outlive the book.
  explicit TokenBook(const core::Clock& clock, std::size_t max_tokens = 65536);

  // The real token service gave `token` to a client that presented `holder`'s credentials,
  // valid for `lifetime`.
  void issued(std::string_view token, const ClientIdentity& holder, std::chrono::seconds lifetime);

  // A new offline token for `holder`, valid for `lifetime`: "pullthrough-offline." followed by
  // 43 base64url characters of randomness.
  std::string issue_offline(const ClientIdentity& holder, std::chrono::seconds lifetime);

  struct Holder {
    ClientIdentity identity;
    bool offline = false;
    core::Clock::TimePoint expires{};
  };
  // Who holds the token in an Authorization value "Bearer <token>" (scheme case-insensitive,
  // surrounding blanks ignored), when the book knows it and it has not expired; else empty, also
  // for any other scheme.
  std::optional<Holder> holder_of(std::string_view authorization) const;

  // Whether an Authorization value carries an offline token (known or not: an expired or
  // unknown offline token must not go upstream either).
  static bool is_offline(std::string_view authorization);

  // Tokens held, expired ones included until a new token sweeps them out.
  std::size_t size() const;

 private:
  void insert(std::string key, Holder holder);

  const core::Clock& clock_;
  std::size_t max_tokens_;
  mutable std::mutex mutex_;
  std::map<std::string, Holder> tokens_;  // by SHA-256 of the token (raw bytes)
  // The same keys by expiry: the expired, then the one expiring soonest, go first when the book
  // is full.
  std::set<std::pair<core::Clock::TimePoint, std::string>> by_expiry_;
};

}  // namespace pullthrough::proxy
