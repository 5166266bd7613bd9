#include "dns/responder.hpp"

#include <algorithm>
#include <thread>

#include "core/gate.hpp"
#include "core/logging.hpp"
#include "dns/udp_listener.hpp"

namespace pullthrough::dns {
namespace {

PolicySettings policy_settings(const config::DnsConfig& dns, std::vector<std::string> intercepted,
                               const health::ClientScope* scope) {
  PolicySettings settings;
  settings.scope = scope;
  settings.intercepted = std::move(intercepted);
  settings.allow = dns.allow;
  settings.per_client_qps = dns.per_client_qps;
  settings.cache_entries = dns.cache.max_entries;
  settings.serve_stale = dns.cache.serve_stale;
  settings.answer_ttl = std::chrono::duration_cast<std::chrono::seconds>(dns.answer_ttl);
  return settings;
}

}  // namespace

std::vector<std::string> intercepted_names(const std::vector<config::RegistryConfig>& registries) {
  std::vector<std::string> names;
  for (const auto& registry : registries) {
    names.push_back(registry.host);
    names.insert(names.end(), registry.aliases.begin(), registry.aliases.end());
  }
  return names;
}

// What every accept loop, connection and deferred UDP answer holds: the gate that stop() waits
// for, the policy the listeners call, and the counters they count into.
struct Responder::State {
  Upstream& upstream;
  std::shared_ptr<spdlog::logger> log = core::logger("dns");
  // Entered by the listeners' loops and connections and by every forward in flight.
  std::shared_ptr<core::Gate> gate = std::make_shared<core::Gate>();
  std::shared_ptr<QueryPolicy> policy;
  core::ListenerCounters tcp_counters;
  UdpListener udp;
  TcpServer tcp;

  State(asio::io_context& io, const config::DnsConfig& dns, std::vector<std::string> intercepted,
        health::HealthGate& health, Upstream& upstream_resolver, const core::Clock& clock,
        const health::ClientScope* scope, TcpLimits tcp_limits)
      : upstream(upstream_resolver),
        policy(std::make_shared<QueryPolicy>(policy_settings(dns, std::move(intercepted), scope),
                                             health, upstream_resolver, clock, gate)),
        udp(dns.listen, policy->handler(),
            {policy->counters().malformed, policy->counters().malformed_trailing_garbage,
             policy->counters().send_errors}),
        tcp(io, dns.listen, tcp_limits, policy->handler(), *gate, tcp_counters) {}
};

Responder::Responder(asio::io_context& io, const config::DnsConfig& dns,
                     std::vector<std::string> intercepted, health::HealthGate& gate,
                     Upstream& upstream, const core::Clock& clock, const health::ClientScope* scope,
                     TcpLimits tcp_limits)
    : state_(std::make_shared<State>(io, dns, std::move(intercepted), gate, upstream, clock, scope,
                                     tcp_limits)) {}

// The socket threads stop with the responder, even while a forward in flight still holds the
// state (and the sockets its answer goes out on).
Responder::~Responder() { state_->udp.join(); }

void Responder::start() {
  unsigned per_address = std::max(1U, std::thread::hardware_concurrency());
  state_->udp.bind(per_address);
  state_->tcp.bind();
  state_->udp.start(*state_->gate, state_);
  for (const auto& endpoint : state_->udp.bound()) {
    state_->log->info("listening on udp {} ({} sockets)", endpoint.to_string(), per_address);
  }
  state_->tcp.start(state_);
}

void Responder::stop(std::function<void()> drained) {
  // Stop reading; the descriptors stay open for answers still coming back from upstream.
  state_->udp.stop();
  state_->tcp.stop();
  state_->gate->close([&upstream = state_->upstream, drained = std::move(drained)] {
    upstream.shutdown();
    drained();
  });
}

void Responder::handle(std::span<const std::uint8_t> packet, const core::Endpoint& client,
                       bool over_tcp, Send send) {
  std::vector<std::uint8_t> now;
  if (state_->policy->answer(packet, client, over_tcp, now, [&] { return send; }) ==
      Outcome::answered) {
    send(std::move(now));
  }
}

const DnsCounters& Responder::counters() const { return state_->policy->counters(); }

const core::ListenerCounters& Responder::tcp_listener_counters() const {
  return state_->tcp_counters;
}

std::size_t Responder::cache_entries() const { return state_->policy->cache_entries(); }

std::vector<core::Endpoint> Responder::udp_endpoints() const { return state_->udp.bound(); }

std::vector<core::Endpoint> Responder::tcp_endpoints() const { return state_->tcp.bound(); }

}  // namespace pullthrough::dns
