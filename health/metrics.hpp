// The health monitor's families for /metrics: its counters, and per cache host whether it is up,
// its checks by result, how long the last one took and since when its state holds. Next to the
// monitor, so that what it tracks and what it exposes change together.
#pragma once

#include "core/metrics.hpp"
#include "health/client_scope.hpp"
#include "health/monitor.hpp"

namespace pullthrough::health {

// From any thread: reads one snapshot of the monitor.
void write_metrics(core::MetricsWriter& writer, const HealthMonitor& monitor);

// The DNS side's clients (dns.intercept): how many are intercepted, bypassed and enrolled, the
// bypasses started by alert, and the scope's counters. From any thread.
void write_metrics(core::MetricsWriter& writer, const ClientScope& scope);

}  // namespace pullthrough::health
