// The WWW-Authenticate challenges clients are shown for an intercepted registry. A Bearer
// challenge's realm names where a client takes its credentials for a token; every such realm is
// replaced by the appliance's own token endpoint on the host the client asked
// (https://<Host>/v2/_pullthrough/token), and the appliance forwards token requests to the real
// realm, which it remembers per registry (RealmBook). So a token request reaches the real token
// service with the client's credentials whether or not its host is intercepted, the appliance
// learns which token stands for which credentials (TokenBook), and it can still answer while the
// real token service is down. Basic and other challenges pass unchanged.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "proxy/upstream/auth_challenge.hpp"
#include "proxy/upstream/url.hpp"

namespace pullthrough::proxy {

// The appliance's token endpoint, on every intercepted host. '_' cannot start a repository name,
// so the path cannot name a repository's endpoint.
inline constexpr std::string_view kTokenPath = "/v2/_pullthrough/token";

// One challenge as WWW-Authenticate text: `Scheme realm="...", k="v", ...` with realm first and
// the other parameters in order, every value quoted and escaped (RFC 9110 5.6.4); or
// `Scheme token68`. The scheme's first letter is upper-cased ("Bearer"). For a challenge as
// parse_challenges returns it, parse_challenges(format_challenge(c)) gives back c; a control
// character a quoted-string cannot carry (anything below 0x20 but HTAB, and DEL) is left out.
std::string format_challenge(const Challenge& challenge);

struct RewrittenChallenges {
  std::string value;              // the field value to show the client
  std::optional<Location> realm;  // the real realm of the (first) Bearer challenge, if any
};
// Rewrites one WWW-Authenticate field value from upstream: each Bearer challenge's realm becomes
// https://<client_host><kTokenPath>; every other parameter, and every other challenge, is kept
// (re-quoted). A Bearer challenge without a realm passes as it is. `client_host` is the Host
// field the client sent (port kept): a DNS name or IPv4 address, or a bracketed IPv6 literal,
// with an optional port. Empty when `client_host` is anything else (it lands in a header), the
// value does not parse, the rewritten value would be longer than parse_challenges accepts, or a
// Bearer realm is not an absolute http(s) URL without userinfo or fragment: such a challenge
// cannot be answered through the appliance.
std::optional<RewrittenChallenges> rewrite_challenges(std::string_view field_value,
                                                      std::string_view client_host);

// Per registry: the real token realm its challenges named last, and its last answer to
// `GET /v2/` for a client without credentials (status and WWW-Authenticate values, rewritten
// later per client host), so that an outage does not break a client's first request. Keyed by the
// configured registry host, so bounded by the configuration. Thread-safe.
class RealmBook {
 public:
  struct BaseAnswer {
    unsigned status = 200;
    std::vector<std::string> challenges;  // WWW-Authenticate values as upstream sent them
    core::Clock::TimePoint seen{};
  };

  explicit RealmBook(const core::Clock& clock);

  void record_realm(const std::string& host, const Location& realm);
  std::optional<Location> realm(const std::string& host) const;

  // Stamps `answer.seen` with the clock's time.
  void record_base(const std::string& host, BaseAnswer answer);
  // The last answer recorded for `host`, with when it was seen.
  std::optional<BaseAnswer> base(const std::string& host) const;

 private:
  const core::Clock& clock_;
  mutable std::mutex mutex_;
  std::map<std::string, Location> realms_;
  std::map<std::string, BaseAnswer> bases_;
};

}  // namespace pullthrough::proxy
