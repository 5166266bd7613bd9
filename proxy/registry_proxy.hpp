// The registry cache's HTTP side: one coroutine per TLS connection (behind TlsFrontDoor),
// serving the OCI distribution pull API for the registry the connection's SNI names.
//
// Per connection: HTTP/1.1 keep-alive, a header size limit, a timeout for each request to arrive
// and for each write to make progress (a slow or stalled client cannot hold the connection), and
// no request bodies (pulls have none). The Host field must name the same registry as the SNI.
// Paths are checked against the spec's grammars (proxy/route.hpp) before anything touches the
// store or the upstream; errors are the spec's JSON error bodies.
#pragma once

#include "core/asio.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/counters.hpp"
#include "proxy/blob_fetches.hpp"
#include "proxy/blob_store.hpp"
#include "proxy/front_door.hpp"
#include "proxy/manifest_cache.hpp"
#include "proxy/metadata_index.hpp"
#include "proxy/storage_monitor.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

struct RegistryProxyLimits {
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  // From the end of one response (or the handshake) until the next request's header is in.
  std::chrono::milliseconds request_timeout = std::chrono::seconds(60);
  // Each write to the client must complete within this: about 4 KiB/s at the least.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(60);
  // Blob bytes are read from the store and written to the client this much at a time: a few TLS
  // records, small enough that many connections' buffers stay in the CPU caches.
  std::size_t chunk_bytes = std::size_t{64} * 1024;
  std::size_t max_passthrough_bytes = std::size_t{4} * 1024 * 1024;  // tags/list, referrers
};

#define PULLTHROUGH_REGISTRY_COUNTERS(COUNTER)                                                \
  COUNTER(requests, "registry API requests from clients (not health checks)")                 \
  COUNTER(health_checks, "GET /v2/ requests from a DNS side's health check")                  \
  COUNTER(requests_rejected, "requests refused: malformed, bad path, wrong Host, a body")     \
  COUNTER(blob_hits, "blob requests answered from the cache")                                 \
  COUNTER(blob_misses, "blob requests that needed an upstream fetch (leaders and followers)") \
  COUNTER(bytes_from_cache, "blob bytes sent to clients from the cache")                      \
  COUNTER(bytes_while_fetching, "blob bytes sent to clients while their fetch was running")   \
  COUNTER(transfers_aborted, "blob transfers cut off because the fetch failed")               \
  COUNTER(client_disconnects, "blob transfers the client gave up on")                         \
  COUNTER(passthrough_requests, "tags/list and referrers requests passed upstream")           \
  COUNTER(upstream_unavailable, "requests answered 503 because upstream was unreachable")

struct RegistryCounters {
  PULLTHROUGH_REGISTRY_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_REGISTRY_COUNTERS)
};

struct RegistryProxyParts {
  const config::Config* config = nullptr;
  // The upstream of each configured registry, keyed by its RegistryConfig.
  std::unordered_map<const config::RegistryConfig*, RegistryUpstream*> upstreams;
  BlobStore* store = nullptr;
  MetadataIndex* index = nullptr;
  BlobFetches* fetches = nullptr;
  ManifestCache* manifests = nullptr;
  const core::WallClock* clock = nullptr;
  RegistryCounters* counters = nullptr;
  // Optional: when set, `GET /v2/` reports the store's health for the DNS side's check.
  const StorageMonitor* storage = nullptr;
  // Optional: while true, `GET /v2/` tells the DNS side's check that this cache is leaving.
  const std::atomic<bool>* leaving = nullptr;
};

class RegistryProxy {
 public:
  // Everything in `parts` must outlive every connection.
  explicit RegistryProxy(RegistryProxyParts parts, RegistryProxyLimits limits = {});

  // A TlsHandler: serves requests on the connection until the client closes it, a limit
  // or timeout is hit, or the service stops.
  boost::asio::awaitable<void> serve(TlsConnection connection);

 private:
  class Session;

  // Records a blob hit in the metadata index for retention, at most once a minute per blob: a
  // hot layer pulled by a whole fleet costs one database write, not one per pull.
  void record_access(const std::string& digest);
  static constexpr std::chrono::seconds kAccessGranularity{60};
  static constexpr std::size_t kMaxAccessEntries = 65536;

  RegistryProxyParts parts_;
  RegistryProxyLimits limits_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex access_mutex_;
  std::unordered_map<std::string, UnixSeconds> last_recorded_;
};

}  // namespace pullthrough::proxy
