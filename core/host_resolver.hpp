// Turning a host name into addresses for an outgoing connection. The registry proxy reaches its
// upstreams by name, and must ask the real resolvers (dns.upstreams), never the system resolver:
// on the appliance that may well be the appliance's own DNS, which answers intercepted names with
// the appliance itself. The production implementation is dns::AddressResolver; tests use a table.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/net.hpp"

namespace pullthrough::core {

struct ResolveResult {
  // In the order to try them. Empty on failure.
  std::vector<IpAddress> addresses;
  // Why there are none, for logs and error bodies ("NXDOMAIN", "timed out", ...).
  std::string error;
};

class HostResolver {
 public:
  virtual ~HostResolver() = default;
  // Resolves `host` (a DNS name, lower case; not an IP literal: callers connect to those
  // directly) and calls `done` exactly once, on a thread of the io_context the resolver was built
  // on, possibly before resolve() returns. Safe to call from any thread.
  virtual void resolve(std::string host, std::function<void(ResolveResult)> done) = 0;
};

}  // namespace pullthrough::core
