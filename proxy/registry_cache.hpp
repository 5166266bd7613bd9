// proxy/: the TLS-terminating pull-through registry cache. The front door (front_door.hpp)
// accepts TLS for the intercepted names; proxy/api/ serves the OCI distribution API on each
// connection; manifest_cache.hpp and cached_blobs.hpp are what the API asks of the cache; the
// store (blob_store.hpp), the metadata index and the blob fetches keep it; proxy/upstream/
// reaches the real registries.
//
// The registry cache as one service: the TLS front door, the request handler behind it, the
// content-addressed store and its metadata index, the blob fetches, and one upstream client per
// configured registry. The app builds it from the configuration and supervises it like any other
// service; nothing here knows about the DNS side except the resolver it is handed.
#pragma once

#include "core/asio.hpp"

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/host_resolver.hpp"
#include "core/service.hpp"
#include "proxy/blob_fetches.hpp"
#include "proxy/client_trust.hpp"
#include "proxy/front_door.hpp"
#include "proxy/lifecycle/prefetch.hpp"
#include "proxy/lifecycle/retention.hpp"
#include "proxy/manifest_cache.hpp"
#include "proxy/registry_proxy.hpp"
#include "proxy/server_tls.hpp"
#include "proxy/storage_monitor.hpp"
#include "proxy/upstream/client.hpp"

namespace pullthrough::proxy {

class S3BlobStore;

class RegistryCache final : public core::Service {
 public:
  // Opens the store under storage.path (removing a crash's temp files) and the metadata index,
  // and builds an upstream client per registry. Throws std::runtime_error naming the file or
  // directory when one cannot be opened, or a registry's ca_file or password_file read.
  // `config`, `tls`, `resolver` and `trust` must outlive the service. `own_addresses`: upstreams
  // that resolve to one of these are refused. `trust`: told of clients that fail the handshake
  // because they do not trust the CA, and asked for the client events of health check answers;
  // may be null.
  RegistryCache(boost::asio::io_context& io, const config::Config& config, ServerTls& tls,
                core::HostResolver& resolver, const std::vector<core::IpAddress>& own_addresses,
                ClientTrust* trust = nullptr);
  ~RegistryCache() override;

  std::string_view name() const override { return "proxy"; }
  void start() override;
  // Stops accepting, lets connections and blob fetches finish, then closes upstream connections.
  void stop(std::function<void()> drained) override;

  // The handover before a stop: the cache keeps serving, but its answers to health checks say
  // it is leaving, so the DNS side stops handing it out. Safe from any thread.
  void begin_leaving();
  bool leaving() const;

  const std::vector<core::Endpoint>& bound_endpoints() const;
  const RegistryCounters& counters() const;
  const BlobFetchCounters& fetch_counters() const;
  const ManifestCounters& manifest_counters() const;
  // The upstream client of config.registries[index].
  const UpstreamCounters& upstream_counters(std::size_t index) const;
  const FrontDoorCounters& front_door_counters() const;
  const core::ListenerCounters& listener_counters() const;
  const StorageMonitor& storage() const;
  // The bucket the cache keeps its content in (storage.backend s3); null with the filesystem.
  const S3BlobStore* bucket() const;
  // Retention, eviction, pins and the admin's questions about the cache (thread-safe).
  Retention& retention() const;
  // `pullthrough prefetch`: images pulled into the cache through its own fetch path.
  Prefetcher& prefetcher() const;
  std::size_t open_connections() const;
  std::size_t blob_fetches_in_flight() const;

 private:
  struct Parts;
  std::unique_ptr<Parts> parts_;
};

}  // namespace pullthrough::proxy
