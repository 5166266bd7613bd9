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

}  // namespace pullthrough::health
