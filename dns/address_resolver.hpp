// Host names to addresses for the registry proxy's outgoing connections, asked of the real
// resolvers through dns::Upstream (the c-ares Forwarder in production) rather than the system
// resolver, which on the appliance may be the appliance itself. One A and one AAAA query per name,
// a small cache of the outcomes, and stale addresses when the resolvers fail (RFC 8767).
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.hpp"
#include "core/counters.hpp"
#include "core/host_resolver.hpp"
#include "dns/upstream.hpp"

namespace pullthrough::dns {

#define PULLTHROUGH_ADDRESS_RESOLVER_COUNTERS(COUNTER)                                      \
  COUNTER(lookups, "host lookups sent upstream (one A and one AAAA query each)")            \
  COUNTER(cache_hits, "host lookups answered from the cache, addresses or failure")         \
  COUNTER(stale_served, "expired addresses served because the upstreams failed")            \
  COUNTER(failures, "host lookups that ended without addresses (NXDOMAIN, NODATA, errors)") \
  COUNTER(invalid_names, "host names refused without a query: not a valid host name")

struct AddressResolverCounters {
  PULLTHROUGH_ADDRESS_RESOLVER_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_ADDRESS_RESOLVER_COUNTERS)
};

struct AddressResolverLimits {
  // Addresses live for their records' smallest TTL, kept within these bounds: a TTL of 0 would
  // send every connection to the resolvers, and a day-long one would outlive a registry's move.
  std::chrono::seconds min_ttl{5};
  std::chrono::seconds max_ttl{300};
  // How long NXDOMAIN, NODATA and failures (SERVFAIL, timeout) are remembered. RFC 9520 asks
  // resolvers to cache failures too, so that a broken name does not become a retry storm.
  std::chrono::seconds negative_ttl{5};
  // How long past their expiry addresses may still be served when a lookup fails.
  std::chrono::seconds serve_stale{std::chrono::minutes(10)};
  // Names cached; when full, the entry whose last use for anything runs out soonest goes.
  std::size_t max_entries = 1024;
  // Distinct names being looked up at once; beyond that resolve() fails at once.
  std::size_t max_in_flight = 256;
};

class AddressResolver final : public core::HostResolver {
 public:
  // `upstream` and `clock` must outlive the resolver and every lookup in flight (the upstream
  // calls back into it). `done` callbacks are posted to `io`.
  AddressResolver(boost::asio::io_context& io, Upstream& upstream, const core::Clock& clock,
                  AddressResolverLimits limits = {});
  ~AddressResolver() override;
  AddressResolver(const AddressResolver&) = delete;
  AddressResolver& operator=(const AddressResolver&) = delete;

  // IPv4 addresses first, then IPv6, each in the upstream's order without duplicates. Lookups
  // still in flight when the resolver is destroyed still complete and call their `done`.
  void resolve(std::string host, std::function<void(core::ResolveResult)> done) override;

  const AddressResolverCounters& counters() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::dns
