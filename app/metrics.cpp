#include "app/metrics.hpp"

#include <chrono>
#include <cstdint>

#include "app/version.hpp"
#include "dns/metrics.hpp"
#include "health/metrics.hpp"
#include "proxy/metrics.hpp"

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
  if (sources.scope != nullptr) {
    metrics.add(
        [scope = sources.scope](core::MetricsWriter& w) { health::write_metrics(w, *scope); });
  }
  if (sources.cache != nullptr) {
    metrics.add([s = sources](core::MetricsWriter& w) {
      proxy::write_metrics(w, *s.cache, *s.tls, *s.config);
      dns::write_upstream_resolver_metrics(w, *s.resolver, s.resolver_forwarder);
      // The CA page is the app's: it serves the proxy role's CA, so it shows with that role.
      if (s.ca_page != nullptr) {
        w.counters("pullthrough_ca_page_http", s.ca_page->counters());
        w.counters("pullthrough_ca_page_listener", s.ca_page->listener_counters());
      }
      if (s.trust != nullptr) w.counters("pullthrough_proxy_clients", s.trust->counters());
    });
  }
  metrics.add([admin = sources.admin](core::MetricsWriter& w) {
    w.counters("pullthrough_admin_http", admin->counters());
    w.counters("pullthrough_admin_listener", admin->listener_counters());
  });
}

}  // namespace pullthrough::app
