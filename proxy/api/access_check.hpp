// Whether a client may be served a repository's content from the cache, decided from what
// upstream says and remembered (proxy/access/):
//  - registries[].share_private: everyone may; the appliance's own access fetches (the operator
//    chose to share what its credentials can read).
//  - A repository that anonymous access can read is public: anyone may, and content is fetched
//    with the appliance's own access (its credentials only raise rate limits). Visibility is
//    checked with an anonymous HEAD of the path asked for, and rechecked after the tag TTL.
//  - Otherwise the client may once upstream has accepted its own Authorization for that
//    repository: a HEAD of the path asked for, sent with the client's credentials, answered 200.
//    That is remembered per (client, repository) for the token's lifetime or 5 minutes; within it
//    the client is served from the cache even while upstream is down, and content not yet cached
//    is fetched with its credentials. Anything else is refused with upstream's answer: a 401 with
//    the challenge (realm pointed at the appliance), a 403 or a 404, and never a cached byte.
#pragma once

#include "core/asio.hpp"

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "core/clock.hpp"
#include "proxy/access/challenges.hpp"
#include "proxy/access/identity.hpp"
#include "proxy/access/repository_access.hpp"
#include "proxy/access/token_book.hpp"
#include "proxy/api/api.hpp"
#include "proxy/api/http_session.hpp"
#include "proxy/metadata_index.hpp"

namespace pullthrough::proxy {

// What the proxy remembers about clients' access, shared by every connection. Visibility and
// each registry's answer to `GET /v2/` are also written to the metadata index (when given), so
// that after a restart during an outage public content is still served to anyone and clients
// still learn how to authenticate; what is read back from there counts as old, used only while
// upstream cannot be asked.
struct AccessBooks {
  // `steady` and `index` (optional) must outlive the books.
  explicit AccessBooks(const core::Clock& steady, MetadataIndex* index = nullptr)
      : clock(steady), tokens(steady), repositories(steady), realms(steady), index_(index) {}

  // From memory; else from the index, as of the check recorded there, and then remembered: the
  // index is read once per repository, not on every request (which would wait on the index
  // while a collection writes it).
  RepositoryAccess::Known visibility(const std::string& host, const std::string& repository,
                                     std::chrono::nanoseconds ttl);
  void record_visibility(const std::string& host, const std::string& repository, bool is_public);
  std::optional<RealmBook::BaseAnswer> base_answer(const std::string& host) const;
  void record_base_answer(const std::string& host, RealmBook::BaseAnswer answer);
  // Records the real realm of the first of `challenges` (WWW-Authenticate values from `host`'s
  // upstream) that names one, and returns it.
  std::optional<Location> learn_realm(const std::string& host,
                                      const std::vector<std::string>& challenges,
                                      std::string_view client_host);

  const core::Clock& clock;
  IdentityHasher identities;
  TokenBook tokens;
  RepositoryAccess repositories;
  RealmBook realms;

 private:
  MetadataIndex* index_;
};

// Who a request's client is, from its Authorization field.
struct ClientCredentials {
  std::string authorization;  // as sent; empty: none
  ClientIdentity identity;
  bool offline = false;  // an offline token: never sent upstream
  // What is left of a token the appliance saw issued, when it is one.
  std::optional<std::chrono::seconds> lifetime;
};
ClientCredentials credentials_of(const AccessBooks& books, std::string_view authorization);

struct Clearance {
  bool allowed = false;
  // When allowed: how to ask upstream for what the cache lacks.
  UpstreamCredentials upstream;
  // When refused: the answer.
  unsigned status = 0;
  OciError error = OciError::unauthorized;
  std::string message;
  std::vector<std::string> challenges;  // WWW-Authenticate values, realms already rewritten
};

class AccessCheck {
 public:
  // `books` and `counters` must outlive this.
  AccessCheck(AccessBooks& books, RegistryCounters& counters, spdlog::logger& log)
      : books_(books), counters_(counters), log_(log) {}

  // May the client of `request` be served `request.route` (a manifest or a blob)?
  asio::awaitable<Clearance> clear(const ApiRequest& request);

  // The challenges to show a client refused without an upstream answer at hand: those of the
  // registry's last answer to `GET /v2/`, rewritten for the client's host.
  std::vector<std::string> known_challenges(const ApiRequest& request) const;

  // Upstream refused the client of `request` after all (its token expired): the grant ends.
  void revoke(const ApiRequest& request);

  // Sends a refusal: its status, its challenges, an OCI error body.
  static asio::awaitable<bool> send(HttpSession& session, const Clearance& refused);

 private:
  asio::awaitable<Clearance> verify_client(const ApiRequest& request,
                                           const ClientCredentials& client);

  AccessBooks& books_;
  RegistryCounters& counters_;
  spdlog::logger& log_;
};

}  // namespace pullthrough::proxy
