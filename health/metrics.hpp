// The health monitor's families for /metrics: its counters, and per cache host whether it is up,
// its checks by result, how long the last one took and since when its state holds. Next to the
// monitor, so that what it tracks and what it exposes change together.
#pragma once

#include "core/metrics.hpp"
#include "health/monitor.hpp"

namespace pullthrough::health {

// From any thread: reads one snapshot of the monitor.
void write_metrics(core::MetricsWriter& writer, const HealthMonitor& monitor);

}  // namespace pullthrough::health
