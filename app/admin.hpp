// The admin listener's two pages: `/healthz` (200 while the appliance does its job, else 503; a
// JSON body with the gate, every cache host's last check and the storage) and `/metrics` (every
// counter and gauge in the Prometheus text format).
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "app/cli.hpp"
#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/http_service.hpp"
#include "core/metrics.hpp"
#include "health/monitor.hpp"
#include "proxy/storage_monitor.hpp"

namespace pullthrough::app {

struct AdminSources {
  Role role = Role::all;
  const config::Config* config = nullptr;
  const health::HealthMonitor* health = nullptr;   // roles dns and all
  const proxy::StorageMonitor* storage = nullptr;  // roles proxy and all
  const core::MetricsRegistry* metrics = nullptr;
  const core::WallClock* clock = nullptr;
  // Roles proxy and all: true while the cache hands over before a stop.
  std::function<bool()> leaving;
};

// The /healthz answer. Healthy means: with a DNS role, the gate is open (intercepted names are
// rewritten to a cache); with the proxy role alone, the store can take new blobs. Never while the
// cache hands over before a stop: a load balancer's check sees it leave too.
struct HealthReport {
  bool healthy = false;
  std::string json;
};
HealthReport health_report(const AdminSources& sources);

// Everything in `sources` must outlive the handler.
core::HttpHandler make_admin_handler(AdminSources sources);

// RFC 3339 in UTC with milliseconds: "2026-11-29T10:31:09.123Z".
std::string format_rfc3339(core::WallClock::TimePoint when);

}  // namespace pullthrough::app
