// The DNS responder: UDP and TCP listeners on dns.listen, and the policy that answers each query.
// Intercepted names get the healthy cache hosts' addresses while the health gate is open; every
// other name, and intercepted ones while the gate is closed, is answered from the cache or
// forwarded upstream.
#pragma once

#include "core/asio.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/counters.hpp"
#include "core/service.hpp"
#include "core/tcp_listener.hpp"
#include "dns/upstream.hpp"
#include "health/gate.hpp"

namespace pullthrough::dns {

#define PULLTHROUGH_DNS_COUNTERS(COUNTER)                                                      \
  COUNTER(queries_udp, "queries received over UDP")                                            \
  COUNTER(queries_tcp, "queries received over TCP")                                            \
  COUNTER(queries_a, "queries for A records")                                                  \
  COUNTER(queries_aaaa, "queries for AAAA records")                                            \
  COUNTER(queries_https, "queries for HTTPS or SVCB records")                                  \
  COUNTER(queries_any, "queries for ANY")                                                      \
  COUNTER(queries_other, "queries for any other type")                                         \
  COUNTER(rewritten, "intercepted names answered with the cache's addresses")                  \
  COUNTER(cname_rewritten, "forwarded answers whose CNAME chain led into an intercepted name") \
  COUNTER(intercepted_forwarded, "intercepted names forwarded because the gate was closed")    \
  COUNTER(forwarded, "queries forwarded upstream")                                             \
  COUNTER(cache_hits, "answers served from the cache")                                         \
  COUNTER(stale_served, "expired answers served because upstreams failed (RFC 8767)")          \
  COUNTER(refused, "queries refused: client outside dns.allow")                                \
  COUNTER(rate_limited, "UDP queries over the client's rate, answered with TC=1")              \
  COUNTER(malformed, "packets dropped as malformed (see the malformed_* counters)")            \
  COUNTER(malformed_short_header, "malformed: shorter than a header")                          \
  COUNTER(malformed_bad_counts, "malformed: section counts that cannot fit")                   \
  COUNTER(malformed_bad_label, "malformed: bad label length or type")                          \
  COUNTER(malformed_name_too_long, "malformed: name longer than 255 octets")                   \
  COUNTER(malformed_bad_pointer, "malformed: compression pointer out of bounds")               \
  COUNTER(malformed_compression_loop, "malformed: compression pointer loop")                   \
  COUNTER(malformed_truncated, "malformed: record past the end of the message")                \
  COUNTER(malformed_trailing_garbage, "malformed: bytes after the last record")                \
  COUNTER(malformed_bad_opt, "malformed: misplaced or repeated OPT record")                    \
  COUNTER(responses_dropped, "packets that were responses, not queries, dropped")              \
  COUNTER(format_errors, "queries without exactly one question, answered FORMERR")             \
  COUNTER(not_implemented, "queries with an opcode other than QUERY, answered NOTIMP")         \
  COUNTER(upstream_errors, "forwarded queries that failed: timeout, error or bad answer")      \
  COUNTER(servfail_sent, "SERVFAIL answers sent")                                              \
  COUNTER(truncated, "answers truncated to fit the client's buffer")                           \
  COUNTER(send_errors, "answers that could not be sent")

struct DnsCounters {
  PULLTHROUGH_DNS_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_DNS_COUNTERS)
};

// DNS over TCP (RFC 7766): how many connections at once, how many queries a connection may have
// waiting for answers, how long a connection may sit idle between queries, and how long a query
// (after its length) or a write may take.
struct TcpLimits {
  std::size_t max_connections = 1024;
  std::size_t max_in_flight = 64;
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds read_timeout = std::chrono::seconds(10);
};

class Responder final : public core::Service {
 public:
  // Called with the answer to send, at most once per query (not at all for a dropped packet), on
  // any io_context thread.
  using Send = std::function<void(std::vector<std::uint8_t>)>;

  // `config`, `gate`, `upstream` and `clock` must outlive the responder. The responder calls
  // upstream.shutdown() once it has drained.
  Responder(boost::asio::io_context& io, const config::Config& config, health::HealthGate& gate,
            Upstream& upstream, const core::Clock& clock, TcpLimits tcp_limits = {});
  ~Responder() override;

  std::string_view name() const override { return "dns"; }
  void start() override;
  void stop(std::function<void()> drained) override;

  // Answers one packet from `client` (the path every UDP datagram and TCP message takes).
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
