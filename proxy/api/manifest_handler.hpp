// GET and HEAD of /v2/<name>/manifests/<reference>: answered by the manifest cache, which serves
// its copy, revalidates it, or fetches and verifies upstream's.
#pragma once

#include "core/asio.hpp"

#include <boost/asio/awaitable.hpp>

#include "proxy/api/access_check.hpp"
#include "proxy/api/api.hpp"
#include "proxy/api/http_session.hpp"
#include "proxy/manifest_cache.hpp"

namespace pullthrough::proxy {

class ManifestHandler {
 public:
  // All must outlive the handler.
  ManifestHandler(ManifestCache& manifests, RegistryCounters& counters, AccessCheck& access)
      : manifests_(manifests), counters_(counters), access_(access) {}

  asio::awaitable<bool> serve(HttpSession& session, const ApiRequest& request);

 private:
  ManifestCache& manifests_;
  RegistryCounters& counters_;
  AccessCheck& access_;
};

// Upstream refused the credentials a client was cleared with (its token expired since): the
// grant ends, and the client gets a 401 with the challenge to answer.
asio::awaitable<bool> send_client_refused(HttpSession& session, const ApiRequest& request,
                                          AccessCheck& access, std::string message);

// Every Accept field of the request joined, as RFC 9110 5.3 allows.
std::string joined_accept(const http::request_header<>& header);

}  // namespace pullthrough::proxy
