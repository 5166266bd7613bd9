// What each DNS query gets, with no socket in sight: a query and the health gate go in; an answer
// (synthesized for an intercepted name while the gate is open, an error, or one from the cache), a
// forward upstream whose answer is relayed later, or nothing (a dropped packet) comes out. The
// UDP listener and the TCP server (udp_listener.hpp, tcp_server.hpp) call it through its
// QueryHandler.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <spdlog/logger.h>

#include "core/clock.hpp"
#include "core/counters.hpp"
#include "core/gate.hpp"
#include "core/net.hpp"
#include "dns/answers.hpp"
#include "dns/query_handler.hpp"
#include "dns/rate_limiter.hpp"
#include "dns/ttl_cache.hpp"
#include "dns/upstream.hpp"
#include "dns/wire.hpp"
#include "health/client_scope.hpp"
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
  COUNTER(client_outside_scope,                                                                \
          "intercepted names forwarded because the client is outside dns.intercept.clients")   \
  COUNTER(client_bypassed,                                                                     \
          "intercepted names forwarded because the client does not trust the CA (learned)")    \
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

// One list for the whole responder, so that /metrics keeps one prefix: the policy counts queries
// and what it made of them, the UDP listener counts datagrams too large to be queries and answers
// the socket would not take.
struct DnsCounters {
  PULLTHROUGH_DNS_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_DNS_COUNTERS)
};

// What the policy takes from the configuration (config::DnsConfig and the registries).
struct PolicySettings {
  std::vector<std::string> intercepted;  // lower case, without the trailing dot
  std::vector<core::Cidr> allow;         // empty: every client
  std::uint32_t per_client_qps = 0;      // over UDP; 0: no limit
  std::size_t cache_entries = 100000;
  std::chrono::milliseconds serve_stale = std::chrono::seconds(30);  // RFC 8767
  std::chrono::seconds answer_ttl = std::chrono::seconds(10);
  // Which clients get the cache's addresses (dns.intercept); null: every client. Must outlive
  // the policy.
  const health::ClientScope* scope = nullptr;
};

class QueryPolicy final : public std::enable_shared_from_this<QueryPolicy> {
 public:
  // `health`, `upstream` and `clock` must outlive the policy. Make it with std::make_shared: each
  // forward in flight holds the policy and a place in `in_flight`, the gate its owner closes and
  // waits for on stop.
  QueryPolicy(PolicySettings settings, health::HealthGate& health, Upstream& upstream,
              const core::Clock& clock, std::shared_ptr<core::Gate> in_flight);
  QueryPolicy(const QueryPolicy&) = delete;
  QueryPolicy& operator=(const QueryPolicy&) = delete;

  // Decides what one packet from `client` gets (see Outcome). Safe from any thread. A deferred
  // answer is handed to the Send that `defer` made, on the upstream's thread (or on this one,
  // before answer() returns, when the upstream answers at once).
  Outcome answer(std::span<const std::uint8_t> packet, const core::Endpoint& client, bool over_tcp,
                 std::vector<std::uint8_t>& out, const Defer& defer);

  // answer() for the listeners; valid while the policy is.
  QueryHandler handler();

  const DnsCounters& counters() const { return counters_; }
  // The listeners count into the same list (see DnsCounters).
  DnsCounters& counters() { return counters_; }
  // Answers in the forwarded-answer cache now.
  std::size_t cache_entries() const { return cache_.size(); }

 private:
  // Lets the intercepted-name set be searched with a string_view, without building a string.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const {
      return std::hash<std::string_view>{}(name);
    }
  };
  using Healthy = std::shared_ptr<const health::HealthGate::Addresses>;

  bool is_intercepted(std::string_view name) const;
  const Healthy& healthy_now();
  RelayOptions relay_options(bool intercepted_name, const health::HealthGate::Addresses& healthy,
                             std::uint32_t age);
  std::vector<std::uint8_t> relayed(const Query& query, const UpstreamAnswer& answer,
                                    const RelayOptions& options, std::size_t max_size);
  Outcome answer_forwarded(const Query& query, bool intercepted_name, const Healthy& healthy,
                           std::size_t max_size, std::vector<std::uint8_t>& out,
                           const Defer& defer);
  std::vector<std::uint8_t> on_upstream(const Query& query, const CacheKey& key,
                                        bool intercepted_name,
                                        const health::HealthGate::Addresses& healthy,
                                        std::size_t max_size, ForwardResult result);

  health::HealthGate& health_;
  Upstream& upstream_;
  std::shared_ptr<core::Gate> in_flight_;
  std::shared_ptr<spdlog::logger> log_;
  std::unordered_set<std::string, NameHash, std::equal_to<>> intercepted_;
  std::vector<core::Cidr> allow_;
  const health::ClientScope* scope_;
  std::uint32_t answer_ttl_;
  TtlCache<UpstreamAnswer> cache_;
  RateLimiter limiter_;
  DnsCounters counters_;
};

}  // namespace pullthrough::dns
