#include "proxy/api/access_check.hpp"

#include <algorithm>

#include "core/logging.hpp"
#include "proxy/api/forwarding.hpp"
#include "proxy/api/manifest_handler.hpp"

namespace pullthrough::proxy {
namespace {

// The HEAD that tells whether someone may read what `request` asks for.
UpstreamRequest probe_of(const ApiRequest& request, UpstreamCredentials credentials) {
  UpstreamRequest probe;
  probe.method = http::verb::head;
  const Route& route = request.route;
  probe.target = "/v2/" + route.repository +
                 (route.endpoint == ApiEndpoint::blob ? "/blobs/" : "/manifests/") +
                 route.reference;
  probe.repository = route.repository;
  if (route.endpoint == ApiEndpoint::manifest) probe.accept = joined_accept(request.header);
  probe.credentials = std::move(credentials);
  return probe;
}

OciError error_for(unsigned status, ApiEndpoint endpoint) {
  switch (status) {
    case 401:
      return OciError::unauthorized;
    case 403:
      return OciError::denied;
    case 404:
      return endpoint == ApiEndpoint::blob ? OciError::blob_unknown : OciError::manifest_unknown;
    case 429:
      return OciError::too_many_requests;
    default:
      return OciError::upstream_error;
  }
}

UnixSeconds unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

RepositoryAccess::Known AccessBooks::visibility(const std::string& host,
                                                const std::string& repository,
                                                std::chrono::nanoseconds ttl) {
  RepositoryAccess::Known known = repositories.visibility(host, repository, ttl);
  if (known.visibility != Visibility::unknown || index_ == nullptr) return known;
  try {
    if (auto stored = index_->visibility(host, repository)) {
      const auto now = unix_now();
      // A check time in the future (the wall clock stepped back) counts as now.
      const std::chrono::seconds age(std::max<UnixSeconds>(0, now - stored->checked_at));
      repositories.record_visibility(host, repository, stored->is_public, clock.now() - age);
      known = repositories.visibility(host, repository, ttl);
    }
  } catch (const std::exception& e) {
    core::logger("proxy")->error("reading the visibility of {}/{}: {}", host, repository, e.what());
  }
  return known;
}

void AccessBooks::record_visibility(const std::string& host, const std::string& repository,
                                    bool is_public) {
  repositories.record_visibility(host, repository, is_public);
  if (index_ == nullptr) return;
  try {
    index_->put_visibility(host, repository, is_public, unix_now());
  } catch (const std::exception& e) {
    core::logger("proxy")->error("recording the visibility of {}/{}: {}", host, repository,
                                 e.what());
  }
}

std::optional<RealmBook::BaseAnswer> AccessBooks::base_answer(const std::string& host) const {
  if (auto known = realms.base(host)) return known;
  if (index_ == nullptr) return std::nullopt;
  try {
    if (auto stored = index_->base_answer(host)) {
      // As old as can be: used only while upstream cannot be asked.
      return RealmBook::BaseAnswer{stored->status, std::move(stored->challenges),
                                   core::Clock::TimePoint::min()};
    }
  } catch (const std::exception& e) {
    core::logger("proxy")->error("reading the /v2/ answer of {}: {}", host, e.what());
  }
  return std::nullopt;
}

std::optional<Location> AccessBooks::learn_realm(const std::string& host,
                                                 const std::vector<std::string>& challenges,
                                                 std::string_view client_host) {
  for (const auto& value : challenges) {
    auto rewritten = rewrite_challenges(value, client_host);
    if (rewritten && rewritten->realm) {
      realms.record_realm(host, *rewritten->realm);
      return rewritten->realm;
    }
  }
  return std::nullopt;
}

void AccessBooks::record_base_answer(const std::string& host, RealmBook::BaseAnswer answer) {
  auto known = realms.base(host);
  bool changed = !known || known->status != answer.status || known->challenges != answer.challenges;
  if (changed && index_ != nullptr) {
    try {
      index_->put_base_answer(host, BaseAnswerRecord{answer.status, answer.challenges, unix_now()});
    } catch (const std::exception& e) {
      core::logger("proxy")->error("recording the /v2/ answer of {}: {}", host, e.what());
    }
  }
  realms.record_base(host, std::move(answer));
}

ClientCredentials credentials_of(const AccessBooks& books, std::string_view authorization) {
  ClientCredentials client;
  client.authorization = std::string(authorization);
  if (authorization.empty()) return client;
  auto holder = books.tokens.holder_of(authorization);
  if (TokenBook::is_offline(authorization)) {
    client.offline = true;
    if (holder) client.identity = holder->identity;  // else anonymous: it stands for nobody
    return client;
  }
  if (holder) {
    client.identity = holder->identity;
    auto left =
        std::chrono::duration_cast<std::chrono::seconds>(holder->expires - books.clock.now());
    client.lifetime = std::max(left, std::chrono::seconds(0));
    return client;
  }
  client.identity = books.identities.of_authorization(authorization);
  return client;
}

asio::awaitable<Clearance> AccessCheck::clear(const ApiRequest& request) {
  Clearance cleared;
  cleared.allowed = true;
  const config::RegistryConfig& registry = request.registry;
  if (registry.share_private) co_return cleared;  // the appliance's own access, for everyone

  const std::string& host = registry.host;
  const std::string& repository = request.route.repository;
  RepositoryAccess::Known known = books_.visibility(host, repository, registry.manifest_ttl);
  if (known.visibility == Visibility::public_repository && known.fresh) co_return cleared;

  if (!known.fresh) {
    counters_.visibility_checks.add();
    UpstreamRequest probe = probe_of(request, UpstreamCredentials{UpstreamAuth::anonymous, {}});
    UpstreamResult probed = co_await request.upstream.send(std::move(probe));
    if (probed.response) {
      unsigned status = probed.response->header.result_int();
      if (status == 200) {
        books_.record_visibility(host, repository, true);
        co_return cleared;
      }
      // 404 says nothing: the path may not exist, or a registry may hide private repositories
      // that way. Only an explicit refusal makes a repository restricted.
      if (status == 401 || status == 403) {
        books_.record_visibility(host, repository, false);
      }
    } else if (known.visibility == Visibility::public_repository) {
      // Upstream is down: the last answer stands, and public content stays available.
      co_return cleared;
    }
  }

  ClientCredentials client = credentials_of(books_, request.authorization);
  if (books_.repositories.granted(client.identity, host, repository)) {
    cleared.upstream = UpstreamCredentials{UpstreamAuth::client,
                                           client.offline ? std::string() : client.authorization};
    co_return cleared;
  }
  co_return co_await verify_client(request, client);
}

asio::awaitable<Clearance> AccessCheck::verify_client(const ApiRequest& request,
                                                      const ClientCredentials& client) {
  const std::string& host = request.registry.host;
  const std::string& repository = request.route.repository;
  Clearance refused;
  if (client.offline) {
    // Issued while the token service was down, for credentials nobody could check: it opens
    // only what upstream granted those credentials earlier, and that was checked above.
    counters_.access_refused.add();
    refused.status = 401;
    refused.error = OciError::unauthorized;
    refused.message = "the token service of " + host +
                      " could not be reached, and this client's access to " + repository +
                      " has not been confirmed recently";
    refused.challenges = known_challenges(request);
    co_return refused;
  }
  counters_.access_checks.add();
  UpstreamRequest probe =
      probe_of(request, UpstreamCredentials{UpstreamAuth::client, client.authorization});
  UpstreamResult checked = co_await request.upstream.send(std::move(probe));
  if (!checked.response) {
    counters_.access_refused.add();
    counters_.upstream_unavailable.add();
    refused.status = 503;
    refused.error = OciError::unavailable;
    refused.message = "upstream " + host +
                      " cannot be reached to confirm this client's access to " + repository + " (" +
                      checked.error + ")";
    co_return refused;
  }
  const auto& header = checked.response->header;
  unsigned status = header.result_int();
  if (status == 200) {
    Clearance cleared;
    cleared.allowed = true;
    if (client.identity.anonymous) {
      // Readable with no credentials at all: public after all.
      books_.record_visibility(host, repository, true);
      co_return cleared;
    }
    books_.repositories.grant(client.identity, host, repository, client.lifetime);
    log_.debug("{}: client {} may read {}/{}", request.client_host, client.identity.log_text(),
               host, repository);
    cleared.upstream = UpstreamCredentials{UpstreamAuth::client, client.authorization};
    co_return cleared;
  }
  counters_.access_refused.add();
  books_.repositories.revoke(client.identity, host, repository);
  refused.status = status;
  refused.error = error_for(status, request.route.endpoint);
  refused.message = "upstream " + host + " answered " + std::to_string(status) + " for " +
                    repository + " with this client's credentials";
  if (status == 401) {
    refused.challenges = rewritten_challenges(challenge_values(header), request.client_host);
    if (refused.challenges.empty()) refused.challenges = known_challenges(request);
  }
  co_return refused;
}

std::vector<std::string> AccessCheck::known_challenges(const ApiRequest& request) const {
  auto base = books_.base_answer(request.registry.host);
  if (!base) return {};
  return rewritten_challenges(base->challenges, request.client_host);
}

void AccessCheck::revoke(const ApiRequest& request) {
  ClientCredentials client = credentials_of(books_, request.authorization);
  books_.repositories.revoke(client.identity, request.registry.host, request.route.repository);
}

asio::awaitable<bool> AccessCheck::send(HttpSession& session, const Clearance& refused) {
  auto response = session.response(static_cast<http::status>(refused.status));
  for (const auto& challenge : refused.challenges) {
    response.insert(http::field::www_authenticate, challenge);
  }
  response.set(http::field::content_type, "application/json");
  response.body() = error_body(refused.error, refused.message);
  response.prepare_payload();
  co_return co_await session.write(response);
}

}  // namespace pullthrough::proxy
