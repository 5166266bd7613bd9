// The admin listener: `/healthz` (200 while the appliance does its job, else 503; a JSON body with
// the gate, every cache host's last check, the storage and the clients that are not
// intercepted), `/metrics` (every counter and gauge in the Prometheus text format), `/clients`
// (the enrolled set: GET lists it with the bypassed clients, PUT /clients/<address> enrolls one,
// DELETE removes one; what `pullthrough clients` uses), and `/cache` (app/cache_admin.hpp; what
// `pullthrough cache` uses).
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "app/cli.hpp"
#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/http_service.hpp"
#include "core/metrics.hpp"
#include "core/units.hpp"
#include "health/client_scope.hpp"
#include "health/monitor.hpp"
#include "proxy/client_trust.hpp"
#include "proxy/lifecycle/prefetch.hpp"
#include "proxy/lifecycle/retention.hpp"
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
  // Roles dns and all: which clients are intercepted; /clients manages its enrolled set.
  health::ClientScope* scope = nullptr;
  // Roles proxy and all: the clients this cache reported as untrusted.
  const proxy::ClientTrust* trust = nullptr;
  // Roles proxy and all: retention, pins and the cache's contents (/cache).
  proxy::Retention* retention = nullptr;
  proxy::Prefetcher* prefetcher = nullptr;
  // Changes (POST, PUT, DELETE) need `Authorization: Bearer <token>` (admin.token_file) when the
  // listener is not on a loopback address; with no token they are then refused.
  bool changes_need_token = false;
  std::string token;
};

// The /healthz answer. Healthy means: with a DNS role, the gate is open (intercepted names are
// rewritten to a cache); with the proxy role alone, the store can take new blobs. Never while the
// cache hands over before a stop: a load balancer's check sees it leave too.
struct HealthReport {
  bool healthy = false;
  std::string json;
};
HealthReport health_report(const AdminSources& sources);

// Everything in `sources` must outlive the handler. /healthz, /metrics and /clients.
core::HttpHandler make_admin_handler(AdminSources sources);
// The whole admin listener: the above, /cache (app/cache_admin.hpp), and the token check of
// changes.
core::AsyncHttpHandler make_admin_service(AdminSources sources);

using core::format_rfc3339;

}  // namespace pullthrough::app
