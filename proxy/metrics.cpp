#include "proxy/metrics.hpp"

#include <utility>

#include <chrono>
#include <string>
#include <vector>

#include "proxy/s3_blob_store.hpp"

namespace pullthrough::proxy {

namespace {

void write_bucket_metrics(core::MetricsWriter& writer, const S3BlobStore& bucket) {
  const s3::ClientMetrics& m = bucket.metrics();
  writer.family("pullthrough_s3_requests_total",
                "requests to the bucket by operation and status class (none: no answer)",
                core::MetricType::counter);
  for (std::size_t op = 0; op < s3::kOperationCount; ++op) {
    for (std::size_t status = 0; status < s3::kStatusClassCount; ++status) {
      writer.sample(m.requests[op][status].value(),
                    {{"operation", s3::to_string(static_cast<s3::Operation>(op))},
                     {"status", s3::to_string(static_cast<s3::StatusClass>(status))}});
    }
  }
  writer.family("pullthrough_s3_retries_total",
                "requests to the bucket tried again (5xx, SlowDown, timeouts, resets)",
                core::MetricType::counter);
  for (std::size_t op = 0; op < s3::kOperationCount; ++op) {
    writer.sample(m.retries[op].value(),
                  {{"operation", s3::to_string(static_cast<s3::Operation>(op))}});
  }
  writer.counter("pullthrough_s3_sent_bytes_total", "request body bytes sent to the bucket",
                 m.bytes_sent.value());
  writer.counter("pullthrough_s3_received_bytes_total",
                 "response body bytes received from the bucket", m.bytes_received.value());
  writer.family("pullthrough_s3_request_duration_seconds",
                "from a request's first byte sent to its answer's header",
                core::MetricType::histogram);
  for (std::size_t op = 0; op < s3::kOperationCount; ++op) {
    writer.histogram(m.latency[op].snapshot(),
                     {{"operation", s3::to_string(static_cast<s3::Operation>(op))}});
  }
  writer.gauge("pullthrough_s3_hot_tier_bytes", "bytes of verified blobs kept in the spool",
               static_cast<double>(bucket.hot_bytes()));
  writer.gauge("pullthrough_s3_hot_tier_blobs", "verified blobs kept in the spool",
               static_cast<double>(bucket.hot_blobs()));
}

}  // namespace

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

  if (const S3BlobStore* bucket = cache.bucket()) write_bucket_metrics(writer, *bucket);

  const Retention& retention = cache.retention();
  writer.counters("pullthrough_retention", retention.counters());
  auto status = retention.status();
  writer.gauge("pullthrough_storage_bytes", "bytes of blobs and manifests in the store",
               static_cast<double>(status.stored_bytes));
  writer.gauge("pullthrough_storage_max_size_bytes", "storage.max_size (0: no bound)",
               static_cast<double>(config.storage.max_size));
  writer.gauge("pullthrough_storage_pinned_bytes",
               "bytes that pinned or kept-forever references reach, at the last collection",
               static_cast<double>(status.pinned_bytes));
  writer.gauge("pullthrough_retention_last_collection_duration_seconds",
               "how long the last collection took",
               static_cast<double>(status.last_took.count()) / 1000.0);
  writer.gauge(
      "pullthrough_retention_last_collection_timestamp_seconds",
      "when the last collection ran (0: none since start)",
      status.last_collection
          ? std::chrono::duration<double>(status.last_collection->time_since_epoch()).count()
          : 0.0);
}

}  // namespace pullthrough::proxy
