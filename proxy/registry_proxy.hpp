// The registry cache's HTTP side: one session per TLS connection (behind TlsFrontDoor), for the
// registry the connection's SNI names. Each request passes check_request, then goes to the
// handler of its kind (proxy/api/): pulls of manifests and blobs are served from the cache once
// access_check has cleared the client for the repository; `GET /v2/` and the token endpoint
// tell clients how to authenticate; pushes, listings and every other path are passed upstream
// with the client's own credentials.
//
// Per connection: HTTP/1.1 keep-alive, a header size limit, a timeout for each request to arrive,
// for each read of a request body and for each write to make progress (a slow or stalled client
// cannot hold the connection). The Host field must name the same registry as the SNI.
#pragma once

#include "core/asio.hpp"

#include <atomic>
#include <cstddef>
#include <memory>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "proxy/api/access_check.hpp"
#include "proxy/api/api.hpp"
#include "proxy/api/base_handler.hpp"
#include "proxy/api/blob_handler.hpp"
#include "proxy/api/forward_handler.hpp"
#include "proxy/api/http_session.hpp"
#include "proxy/api/listing_handler.hpp"
#include "proxy/api/manifest_handler.hpp"
#include "proxy/api/token_handler.hpp"
#include "proxy/cached_blobs.hpp"
#include "proxy/front_door.hpp"
#include "proxy/manifest_cache.hpp"
#include "proxy/storage_monitor.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

struct RegistryProxyLimits : HttpLimits {
  std::size_t max_passthrough_bytes = std::size_t{4} * 1024 * 1024;  // tags/list, referrers
};

struct RegistryProxyParts {
  const config::Config* config = nullptr;
  // The upstream of each configured registry, keyed by its RegistryConfig.
  std::unordered_map<const config::RegistryConfig*, RegistryUpstream*> upstreams;
  CachedBlobs* blobs = nullptr;
  ManifestCache* manifests = nullptr;
  RegistryCounters* counters = nullptr;
  // What the proxy remembers of clients' access: tokens, grants, realms.
  AccessBooks* access = nullptr;
  // Optional: when set, `GET /v2/` reports the store's health for the DNS side's check.
  const StorageMonitor* storage = nullptr;
  // Optional: while true, `GET /v2/` tells the DNS side's check that this cache is leaving.
  const std::atomic<bool>* leaving = nullptr;
  // Optional: `GET /v2/` carries these to the DNS side's check (health/client_events.hpp).
  const health::ClientEventLog* client_events = nullptr;
};

class RegistryProxy {
 public:
  // Everything in `parts` must outlive every connection.
  explicit RegistryProxy(RegistryProxyParts parts, RegistryProxyLimits limits = {});

  // A TlsHandler: serves requests on the connection until the client closes it, a limit
  // or timeout is hit, or the service stops.
  asio::awaitable<void> serve(TlsConnection connection);

 private:
  asio::awaitable<bool> handle(HttpSession& session, HttpSession::Parser& parser);
  asio::awaitable<bool> pull(HttpSession& session, ApiRequest& request);

  RegistryProxyParts parts_;
  RegistryProxyLimits limits_;
  std::shared_ptr<spdlog::logger> log_;
  AccessCheck access_;
  BaseHandler base_;
  ManifestHandler manifests_;
  BlobHandler blobs_;
  ListingHandler listings_;
  ForwardHandler forwards_;
  TokenHandler tokens_;
  HttpSession::Handler handler_;
};

}  // namespace pullthrough::proxy
