#include "health/metrics.hpp"

#include <chrono>

namespace pullthrough::health {

void write_metrics(core::MetricsWriter& writer, const HealthMonitor& monitor) {
  writer.counters("pullthrough_health", monitor.counters());
  // Every family from the same snapshot, so that a host's samples agree with one another.
  auto snapshot = monitor.snapshot();
  writer.family("pullthrough_health_cache_host_up", "1 while the cache host is up, 0 while down",
                core::MetricType::gauge);
  for (const auto& host : snapshot.hosts) {
    auto name = host.host.endpoint.to_string();
    writer.sample(host.health.up() ? 1.0 : 0.0, {{"host", name}});
  }
  writer.family("pullthrough_health_cache_host_checks_total",
                "health checks of the cache host, by result", core::MetricType::counter);
  for (const auto& host : snapshot.hosts) {
    auto name = host.host.endpoint.to_string();
    writer.sample(host.health.checks() - host.health.failures(),
                  {{"host", name}, {"result", "passed"}});
    writer.sample(host.health.failures(), {{"host", name}, {"result", "failed"}});
  }
  writer.family("pullthrough_health_cache_host_check_duration_seconds",
                "how long the cache host's last health check took", core::MetricType::gauge);
  for (const auto& host : snapshot.hosts) {
    writer.sample(std::chrono::duration<double>(host.health.last().took).count(),
                  {{"host", host.host.endpoint.to_string()}});
  }
  writer.family("pullthrough_health_cache_host_state_since_seconds",
                "when the cache host last went up or down (or started being checked), in Unix "
                "time",
                core::MetricType::gauge);
  for (const auto& host : snapshot.hosts) {
    writer.sample(std::chrono::duration<double>(host.health.since().time_since_epoch()).count(),
                  {{"host", host.host.endpoint.to_string()}});
  }
}

void write_metrics(core::MetricsWriter& writer, const ClientScope& scope) {
  writer.gauge("pullthrough_dns_clients_intercepted",
               "distinct clients handed a cache's address in the last hour",
               static_cast<double>(scope.intercepted_count()));
  writer.gauge("pullthrough_dns_clients_bypassed",
               "clients given the real registries' answers because they do not trust the CA",
               static_cast<double>(scope.bypassed_count()));
  writer.gauge("pullthrough_dns_clients_enrolled", "clients in the enrolled set",
               static_cast<double>(scope.enrolled_count()));
  writer.family("pullthrough_dns_bypass_events_total",
                "bypasses started: a client's TLS handshake with a cache failed with this alert",
                core::MetricType::counter);
  auto events = scope.bypass_events();
  for (auto alert : kCertificateAlerts) {
    writer.sample(events[index_of(alert)], {{"alert", to_string(alert)}});
  }
  writer.counters("pullthrough_dns_clients", scope.counters());
}

}  // namespace pullthrough::health
