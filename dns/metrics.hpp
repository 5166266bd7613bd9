// The DNS side's families for /metrics, written from the components' own counters at scrape time.
// They sit here, next to those counters, so that a component and what it exposes change together;
// the app only decides which of them a role has.
#pragma once

#include "core/metrics.hpp"
#include "dns/address_resolver.hpp"
#include "dns/forwarder.hpp"
#include "dns/responder.hpp"
#include "health/gate.hpp"

namespace pullthrough::dns {

// The responder's counters, its TCP listener's, its forwarder's (null: there is no upstream
// resolver) and what the gate hands out now. From any thread.
void write_metrics(core::MetricsWriter& writer, const Responder& responder,
                   const Forwarder* forwarder, const health::HealthGate& gate);

// The resolver the registry cache reaches upstream registries with, and the forwarder behind it
// (null: there is no upstream resolver). From any thread.
void write_upstream_resolver_metrics(core::MetricsWriter& writer, const AddressResolver& resolver,
                                     const Forwarder* forwarder);

}  // namespace pullthrough::dns
