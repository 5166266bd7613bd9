// GET and HEAD of /v2/<name>/manifests/<reference>: answered by the manifest cache, which serves
// its copy, revalidates it, or fetches and verifies upstream's.
#pragma once

#include "core/asio.hpp"

#include <boost/asio/awaitable.hpp>

#include "proxy/api/api.hpp"
#include "proxy/api/http_session.hpp"
#include "proxy/manifest_cache.hpp"

namespace pullthrough::proxy {

class ManifestHandler {
 public:
  // Both must outlive the handler.
  ManifestHandler(ManifestCache& manifests, RegistryCounters& counters)
      : manifests_(manifests), counters_(counters) {}

  asio::awaitable<bool> serve(HttpSession& session, const ApiRequest& request);

 private:
  ManifestCache& manifests_;
  RegistryCounters& counters_;
};

// Every Accept field of the request joined, as RFC 9110 5.3 allows.
std::string joined_accept(const http::request_header<>& header);

}  // namespace pullthrough::proxy
