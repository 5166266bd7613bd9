// Authentication against one upstream registry: what to send before any challenge, and how to
// answer a 401.
//  - Bearer (RFC 6750, the distribution token protocol): a token from the challenge's realm,
//    fetched anonymously or with the registry's credentials by Basic, cached per realm, service
//    and scope until a little before it expires. The scope each repository needed is
//    remembered, so later requests for it send the cached token without a 401 first.
//  - Basic: the registry's credentials, sent up front once the registry has asked for them.
// The token request itself goes out through a TokenFetch that the client supplies, so the
// authorizer holds no sockets and tests drive it with a fake clock and scripted answers.
// Thread-safe; no lock is held across a co_await.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <spdlog/logger.h>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/counters.hpp"
#include "proxy/upstream/auth_challenge.hpp"
#include "proxy/upstream/registry_upstream.hpp"
#include "proxy/upstream/url.hpp"

namespace pullthrough::proxy {

class Authorizer {
 public:
  // Sends `GET target` to `origin` with the Authorization value `authorization` (none when
  // empty) and returns the response, whose body the authorizer reads.
  using TokenFetch = std::function<boost::asio::awaitable<UpstreamResult>(
      const Origin& origin, const std::string& target, const std::string& authorization)>;

  // What to do about a 401: retry with `authorization`, give up with `failure`, or neither
  // (pass the 401 on as the response).
  struct Answer {
    std::optional<std::string> authorization;
    std::optional<UpstreamResult> failure;
  };

  // `registry`, `clock` and `tokens_fetched` must outlive the authorizer. `password` is the
  // password of registry.credentials, already read from its file.
  Authorizer(const config::RegistryConfig& registry, std::string password, const core::Clock& clock,
             TokenFetch fetch, core::Counter& tokens_fetched,
             std::size_t max_token_body_bytes = std::size_t{1024} * 1024);

  // The Authorization to send with a request for `repository` before any 401 (empty: none).
  std::string before_challenge(const std::string& repository);

  // The challenge in a 401's WWW-Authenticate fields that can be answered: a Bearer one, else a
  // Basic one when there are credentials other than those just refused (`sent`).
  std::optional<Challenge> usable_challenge(const boost::beast::http::response_header<>& header,
                                            const std::string& sent) const;

  // Answers `challenge` for a request about `repository` that was refused with `sent`.
  boost::asio::awaitable<Answer> answer(const Challenge& challenge, const std::string& repository,
                                        const std::string& sent);

  // A token is used until this long before the realm says it expires, so that one taken from the
  // cache does not expire on its way to the registry.
  static constexpr std::chrono::seconds kTokenExpiryMargin{10};
  // Bounds of the token cache and of the per-repository memory: an upstream cannot grow either
  // without limit by answering every repository with a new scope.
  static constexpr std::size_t kMaxCachedTokens = 4096;
  static constexpr std::size_t kMaxRememberedRepositories = 4096;

 private:
  struct TokenKey {
    std::string realm;
    std::string service;
    std::string scope;
    std::string text() const { return realm + '\n' + service + '\n' + scope; }
  };
  struct CachedToken {
    std::string value;
    core::Clock::TimePoint expires;
  };

  std::string basic_credentials() const;
  boost::asio::awaitable<Answer> answer_bearer(const Challenge& bearer,
                                               const std::string& repository,
                                               const std::string& sent);
  Answer failure(const std::string& why) const;

  const config::RegistryConfig& registry_;
  std::string password_;
  const core::Clock& clock_;
  TokenFetch fetch_;
  core::Counter& tokens_fetched_;
  std::size_t max_token_body_bytes_;
  bool registry_tls_;
  std::shared_ptr<spdlog::logger> log_;

  std::mutex mutex_;
  std::map<std::string, CachedToken> tokens_;  // by TokenKey::text()
  // The token a repository needed last time.
  std::map<std::string, TokenKey> repository_tokens_;
  // The registry answered with a Basic challenge once.
  bool basic_seen_ = false;
};

}  // namespace pullthrough::proxy
