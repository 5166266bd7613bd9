// What /metrics shows for one appliance: the families of every component the role runs, and the
// app's own (the running version, the start time, the admin listener).
#pragma once

#include "config/config.hpp"
#include "core/http_service.hpp"
#include "core/metrics.hpp"
#include "dns/address_resolver.hpp"
#include "dns/forwarder.hpp"
#include "dns/responder.hpp"
#include "health/client_scope.hpp"
#include "health/gate.hpp"
#include "health/monitor.hpp"
#include "proxy/client_trust.hpp"
#include "proxy/registry_cache.hpp"
#include "proxy/server_tls.hpp"

namespace pullthrough::app {

// Everything here must outlive the registry's collectors. Null: the role does not run it.
struct MetricsSources {
  const config::Config* config = nullptr;
  // The DNS role: the responder, its forwarder (null without upstream resolvers) and its gate.
  const dns::Responder* responder = nullptr;
  const dns::Forwarder* forwarder = nullptr;
  const health::HealthGate* gate = nullptr;
  const health::HealthMonitor* monitor = nullptr;
  const health::ClientScope* scope = nullptr;
  // The proxy role: the cache, its TLS, the resolver of upstream registries and its forwarder
  // (null without upstream resolvers), and the CA page (null when it does not listen).
  const proxy::RegistryCache* cache = nullptr;
  const proxy::ServerTls* tls = nullptr;
  const dns::AddressResolver* resolver = nullptr;
  const dns::Forwarder* resolver_forwarder = nullptr;
  const core::HttpService* ca_page = nullptr;
  const proxy::ClientTrust* trust = nullptr;
  const core::HttpService* admin = nullptr;  // always
};

// Adds a collector per component to `metrics`; the values are read at each scrape.
void register_metrics(core::MetricsRegistry& metrics, const MetricsSources& sources);

}  // namespace pullthrough::app
