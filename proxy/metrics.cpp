#include "proxy/metrics.hpp"

#include <utility>

#include <string>
#include <vector>

namespace pullthrough::proxy {

void write_metrics(core::MetricsWriter& writer, const RegistryCache& cache, const ServerTls& tls,
                   const config::Config& config) {
  writer.counters("pullthrough_proxy", cache.counters());
  writer.counters("pullthrough_proxy_blob", cache.fetch_counters());
  writer.counters("pullthrough_proxy", cache.manifest_counters());  // names start with manifest_
  writer.counters("pullthrough_proxy_front_door", cache.front_door_counters());
  writer.counters("pullthrough_proxy_listener", cache.listener_counters());
  writer.counters("pullthrough_proxy_tls", tls.counters());
  std::vector<std::pair<std::string, const UpstreamCounters*>> upstreams;
  for (std::size_t i = 0; i < config.registries.size(); ++i) {
    upstreams.emplace_back(config.registries[i].host, &cache.upstream_counters(i));
  }
  writer.labelled_counters("pullthrough_upstream", "registry", upstreams);
  writer.gauge("pullthrough_proxy_connections_open", "TLS connections open to the cache",
               static_cast<double>(cache.open_connections()));
  writer.gauge("pullthrough_proxy_blob_fetches_in_flight", "blobs being fetched from upstream",
               static_cast<double>(cache.blob_fetches_in_flight()));
  auto report = cache.storage().last();
  writer.gauge("pullthrough_storage_healthy",
               "1 while the store takes new blobs (writable, free space above storage.min_free)",
               report.health.ok() ? 1.0 : 0.0);
  if (report.health.free_bytes) {
    writer.gauge("pullthrough_storage_free_bytes", "free space on the store's file system",
                 static_cast<double>(*report.health.free_bytes));
  }
  if (report.health.total_bytes) {
    writer.gauge("pullthrough_storage_filesystem_size_bytes", "size of the store's file system",
                 static_cast<double>(*report.health.total_bytes));
  }
  writer.gauge("pullthrough_storage_min_free_bytes", "storage.min_free",
               static_cast<double>(config.storage.min_free));
}

}  // namespace pullthrough::proxy
