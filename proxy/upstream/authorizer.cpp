#include "proxy/upstream/authorizer.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <string_view>

#include <boost/beast/http/field.hpp>
#include <openssl/evp.h>

#include "core/logging.hpp"

namespace pullthrough::proxy {
namespace {

std::string base64(std::string_view text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  out.resize(static_cast<std::size_t>(std::max(written, 0)));
  return out;
}

template <typename Map>
void make_room(Map& map, std::size_t bound) {
  if (map.size() >= bound) map.erase(map.begin());
}

}  // namespace

Authorizer::Authorizer(const config::RegistryConfig& registry, std::string password,
                       const core::Clock& clock, TokenFetch fetch, core::Counter& tokens_fetched,
                       std::size_t max_token_body_bytes)
    : registry_(registry),
      password_(std::move(password)),
      clock_(clock),
      fetch_(std::move(fetch)),
      tokens_fetched_(tokens_fetched),
      max_token_body_bytes_(max_token_body_bytes),
      registry_tls_(registry.upstream.scheme == "https"),
      log_(core::logger("proxy")) {}

std::string Authorizer::basic_credentials() const {
  return "Basic " + base64(registry_.credentials->username + ":" + password_);
}

Authorizer::Answer Authorizer::failure(const std::string& why) const {
  Answer out;
  out.failure = upstream_failure(UpstreamFailure::auth, "registry " + registry_.host + ": " + why);
  return out;
}

std::string Authorizer::before_challenge(const std::string& repository) {
  std::lock_guard lock(mutex_);
  auto known = repository_tokens_.find(repository);
  if (known != repository_tokens_.end()) {
    auto token = tokens_.find(known->second.text());
    if (token != tokens_.end() && clock_.now() < token->second.expires) {
      return "Bearer " + token->second.value;
    }
  }
  if (basic_seen_ && registry_.credentials) return basic_credentials();
  return {};
}

std::optional<Challenge> Authorizer::usable_challenge(const http::response_header<>& header,
                                                      const std::string& sent) const {
  std::optional<Challenge> bearer;
  std::optional<Challenge> basic;
  auto [first, last] = header.equal_range(http::field::www_authenticate);
  for (auto field = first; field != last; ++field) {
    auto challenges = parse_challenges(field->value());
    if (!challenges) continue;
    for (auto& challenge : *challenges) {
      if (challenge.scheme == "bearer" && !bearer) {
        bearer = std::move(challenge);
      } else if (challenge.scheme == "basic" && !basic) {
        basic = std::move(challenge);
      }
    }
  }
  if (bearer) return bearer;
  if (basic && registry_.credentials && basic_credentials() != sent) return basic;
  return std::nullopt;
}

asio::awaitable<Authorizer::Answer> Authorizer::answer(const Challenge& challenge,
                                                       const std::string& repository,
                                                       const std::string& sent) {
  if (challenge.scheme == "bearer") co_return co_await answer_bearer(challenge, repository, sent);
  {
    std::lock_guard lock(mutex_);
    basic_seen_ = true;
  }
  log_->debug("registry {}: answering a Basic challenge with the credentials", registry_.host);
  Answer out;
  out.authorization = basic_credentials();
  co_return out;
}

asio::awaitable<Authorizer::Answer> Authorizer::answer_bearer(const Challenge& bearer,
                                                              const std::string& repository,
                                                              const std::string& sent) {
  auto param = [&](const char* name) {
    auto it = bearer.params.find(name);
    return it == bearer.params.end() ? std::string() : it->second;
  };
  TokenKey key{param("realm"), param("service"), param("scope")};
  std::optional<std::string> scope_override;
  if (key.scope.empty() && !repository.empty()) {
    key.scope = "repository:" + repository + ":pull";
    scope_override = key.scope;
  }

  {
    std::lock_guard lock(mutex_);
    make_room(repository_tokens_, kMaxRememberedRepositories);
    repository_tokens_.insert_or_assign(repository, key);
    // Another request may have fetched a token since ours was refused (or sent none).
    auto cached = tokens_.find(key.text());
    if (cached != tokens_.end() && clock_.now() < cached->second.expires &&
        "Bearer " + cached->second.value != sent) {
      Answer out;
      out.authorization = "Bearer " + cached->second.value;
      co_return out;
    }
  }

  auto url = token_request_url(bearer, scope_override);
  if (!url) co_return failure("unusable Bearer challenge (realm missing or not a URL)");
  auto realm = parse_absolute_url(*url);
  if (!realm) co_return failure("unusable token realm URL");

  std::string authorization;
  if (registry_.credentials) {
    // A password goes in clear text over http only when the registry itself is plain http.
    if (realm->origin.tls() || !registry_tls_) {
      authorization = basic_credentials();
    } else {
      co_return failure("refusing to send credentials to a plain http token realm");
    }
  }
  log_->debug("registry {}: fetching a token for scope '{}' from {}", registry_.host, key.scope,
              realm->origin.url() + std::string(without_query(realm->target)));
  UpstreamResult fetched = co_await fetch_(realm->origin, realm->target, authorization);
  if (!fetched.response) co_return failure("token endpoint: " + fetched.error);
  auto& response = *fetched.response;
  if (response.header.result() != http::status::ok) {
    co_return failure("token endpoint answered " + std::to_string(response.header.result_int()));
  }
  if (!response.body) co_return failure("token endpoint sent no body");
  WholeBody body = co_await read_whole_body(*response.body, max_token_body_bytes_);
  if (body.error) co_return failure("token endpoint body: " + body.error.message());
  auto token = parse_token_response(body.bytes);
  if (!token) co_return failure("token endpoint sent no usable token");
  tokens_fetched_.add();

  auto lifetime = std::max<core::Clock::TimePoint::duration>(token->expires_in - kTokenExpiryMargin,
                                                             std::chrono::seconds(0));
  {
    std::lock_guard lock(mutex_);
    auto now = clock_.now();
    if (tokens_.size() >= kMaxCachedTokens) {
      std::erase_if(tokens_, [now](const auto& entry) { return entry.second.expires <= now; });
      make_room(tokens_, kMaxCachedTokens);
    }
    tokens_.insert_or_assign(key.text(), CachedToken{token->value, now + lifetime});
  }
  Answer out;
  out.authorization = "Bearer " + token->value;
  co_return out;
}

}  // namespace pullthrough::proxy
