#include "dns/metrics.hpp"

namespace pullthrough::dns {

void write_metrics(core::MetricsWriter& writer, const Responder& responder,
                   const Forwarder* forwarder, const health::HealthGate& gate) {
  writer.counters("pullthrough_dns", responder.counters());
  writer.counters("pullthrough_dns_tcp_listener", responder.tcp_listener_counters());
  if (forwarder != nullptr) writer.counters("pullthrough_dns_forwarder", forwarder->counters());
  auto open = gate.healthy();
  writer.gauge("pullthrough_dns_rewriting",
               "1 while intercepted names are answered with cache addresses, 0 while forwarded",
               open->empty() ? 0.0 : 1.0);
  writer.gauge("pullthrough_dns_cache_hosts_handed_out",
               "cache addresses in the answers for intercepted names",
               static_cast<double>(open->size()));
  writer.gauge("pullthrough_dns_cache_entries", "answers in the forwarded-answer cache",
               static_cast<double>(responder.cache_entries()));
}

void write_upstream_resolver_metrics(core::MetricsWriter& writer, const AddressResolver& resolver,
                                     const Forwarder* forwarder) {
  writer.counters("pullthrough_upstream_resolver", resolver.counters());
  if (forwarder != nullptr) {
    writer.counters("pullthrough_upstream_resolver_forwarder", forwarder->counters());
  }
}

}  // namespace pullthrough::dns
