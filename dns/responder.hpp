// dns/: the appliance's DNS side. The responder (this file) answers the LAN's queries: intercepted
// registry names with the cache's addresses while the health gate is open, everything else from
// the answer cache or the real resolvers (forwarder.hpp, c-ares). The wire check, the one table
// of types and codes (wire_format.hpp) and the answer writers are shared by both. The same
// folder holds the resolver the proxy reaches upstream registries with (address_resolver.hpp).
//
// The DNS responder as the appliance runs it: the query policy (query_policy.hpp) behind a UDP and
// a TCP server on dns.listen (udp_listener.hpp, tcp_server.hpp). Intercepted names get the
// healthy cache hosts' addresses while the health gate is open; every other name, and intercepted
// ones while the gate is closed, is answered from the cache or forwarded upstream.
#pragma once

#include "core/asio.hpp"

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/service.hpp"
#include "core/tcp_listener.hpp"
#include "dns/query_policy.hpp"
#include "dns/tcp_server.hpp"
#include "dns/upstream.hpp"
#include "health/client_scope.hpp"
#include "health/gate.hpp"

namespace pullthrough::dns {

// The names the responder answers for itself: every registry's host and aliases.
std::vector<std::string> intercepted_names(const std::vector<config::RegistryConfig>& registries);

class Responder final : public core::Service {
 public:
  // Called with the answer to send, at most once per query (not at all for a dropped packet), on
  // any io_context thread.
  using Send = dns::Send;

  // `gate`, `upstream`, `clock` and `scope` must outlive the responder. The responder calls
  // upstream.shutdown() once it has drained. `scope`: which clients get the cache's addresses
  // (health/client_scope.hpp); null: every client.
  Responder(boost::asio::io_context& io, const config::DnsConfig& dns,
            std::vector<std::string> intercepted, health::HealthGate& gate, Upstream& upstream,
            const core::Clock& clock, const health::ClientScope* scope = nullptr,
            TcpLimits tcp_limits = {});
  ~Responder() override;

  std::string_view name() const override { return "dns"; }
  void start() override;
  void stop(std::function<void()> drained) override;

  // Answers one packet from `client` (what the listeners do with every UDP datagram and TCP
  // message).
  void handle(std::span<const std::uint8_t> packet, const core::Endpoint& client, bool over_tcp,
              Send send);

  const DnsCounters& counters() const;
  // Connections accepted, refused and closed over the limit on the TCP listeners.
  const core::ListenerCounters& tcp_listener_counters() const;
  // Answers in the forwarded-answer cache now.
  std::size_t cache_entries() const;
  std::vector<core::Endpoint> udp_endpoints() const;
  std::vector<core::Endpoint> tcp_endpoints() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::dns
