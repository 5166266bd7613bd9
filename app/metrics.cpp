#include "app/metrics.hpp"

#include <utility>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "app/version.hpp"
#include "dns/metrics.hpp"
#include "health/metrics.hpp"

namespace pullthrough::app {

void register_metrics(core::MetricsRegistry& metrics, const MetricsSources& sources) {
  auto started =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  metrics.add([started](core::MetricsWriter& w) {
    w.family("pullthrough_build_info", "the running version, as a label", core::MetricType::gauge);
    w.sample(std::uint64_t{1}, {{"version", version_string()}});
    w.gauge("pullthrough_start_time_seconds", "when the process started, in Unix time", started);
  });
  if (sources.responder != nullptr) {
    metrics.add([s = sources](core::MetricsWriter& w) {
      dns::write_metrics(w, *s.responder, s.forwarder, *s.gate);
    });
  }
  if (sources.monitor != nullptr) {
    metrics.add([monitor = sources.monitor](core::MetricsWriter& w) {
      health::write_metrics(w, *monitor);
    });
  }
  if (sources.cache != nullptr) {
    metrics.add([s = sources](core::MetricsWriter& w) {
      const auto& cache = *s.cache;
      const auto& cfg = *s.config;
      w.counters("pullthrough_proxy", cache.counters());
      w.counters("pullthrough_proxy_blob", cache.fetch_counters());
      w.counters("pullthrough_proxy", cache.manifest_counters());  // names start with manifest_
      w.counters("pullthrough_proxy_front_door", cache.front_door_counters());
      w.counters("pullthrough_proxy_listener", cache.listener_counters());
      w.counters("pullthrough_proxy_tls", s.tls->counters());
      std::vector<std::pair<std::string, const proxy::UpstreamCounters*>> upstreams;
      for (std::size_t i = 0; i < cfg.registries.size(); ++i) {
        upstreams.emplace_back(cfg.registries[i].host, &cache.upstream_counters(i));
      }
      w.labelled_counters("pullthrough_upstream", "registry", upstreams);
      dns::write_upstream_resolver_metrics(w, *s.resolver, s.resolver_forwarder);
      if (s.ca_page != nullptr) {
        w.counters("pullthrough_ca_page_http", s.ca_page->counters());
        w.counters("pullthrough_ca_page_listener", s.ca_page->listener_counters());
      }
      w.gauge("pullthrough_proxy_connections_open", "TLS connections open to the cache",
              static_cast<double>(cache.open_connections()));
      w.gauge("pullthrough_proxy_blob_fetches_in_flight", "blobs being fetched from upstream",
              static_cast<double>(cache.blob_fetches_in_flight()));
      auto report = cache.storage().last();
      w.gauge("pullthrough_storage_healthy",
              "1 while the store takes new blobs (writable, free space above storage.min_free)",
              report.health.ok() ? 1.0 : 0.0);
      if (report.health.free_bytes) {
        w.gauge("pullthrough_storage_free_bytes", "free space on the store's file system",
                static_cast<double>(*report.health.free_bytes));
      }
      if (report.health.total_bytes) {
        w.gauge("pullthrough_storage_filesystem_size_bytes", "size of the store's file system",
                static_cast<double>(*report.health.total_bytes));
      }
      w.gauge("pullthrough_storage_min_free_bytes", "storage.min_free",
              static_cast<double>(cfg.storage.min_free));
    });
  }
  metrics.add([admin = sources.admin](core::MetricsWriter& w) {
    w.counters("pullthrough_admin_http", admin->counters());
    w.counters("pullthrough_admin_listener", admin->listener_counters());
  });
}

}  // namespace pullthrough::app
