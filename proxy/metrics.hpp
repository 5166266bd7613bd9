// The registry cache's families for /metrics: its counters (requests, blob fetches, manifests,
// the TLS front door and its listener, the handshakes, one set per upstream registry), the
// connections and fetches under way, and the store's health. Next to the cache, so that what it
// counts and what it exposes change together.
#pragma once

#include "config/config.hpp"
#include "core/metrics.hpp"
#include "proxy/registry_cache.hpp"
#include "proxy/server_tls.hpp"

namespace pullthrough::proxy {

// `config` is the one the cache was built with: it names the upstream registries and the store's
// minimum free space. From any thread.
void write_metrics(core::MetricsWriter& writer, const RegistryCache& cache, const ServerTls& tls,
                   const config::Config& config);

}  // namespace pullthrough::proxy
