#include "dns/query_policy.hpp"

#include <algorithm>

#include "core/logging.hpp"
#include "dns/wire_format.hpp"

namespace pullthrough::dns {
namespace {

// RFC 8767 section 4: a stale answer carries a short TTL so clients ask again soon.
constexpr std::uint32_t kStaleTtl = 30;

void count_type(DnsCounters& c, std::uint16_t type) {
  switch (type) {
    case rrtype::kA:
      c.queries_a.add();
      break;
    case rrtype::kAaaa:
      c.queries_aaaa.add();
      break;
    case rrtype::kHttps:
    case rrtype::kSvcb:
      c.queries_https.add();
      break;
    case rrtype::kAny:
      c.queries_any.add();
      break;
    default:
      c.queries_other.add();
  }
}

void count_malformed(DnsCounters& c, WireError error) {
  c.malformed.add();
  switch (error) {
    case WireError::short_header:
      c.malformed_short_header.add();
      break;
    case WireError::bad_counts:
      c.malformed_bad_counts.add();
      break;
    case WireError::bad_label:
      c.malformed_bad_label.add();
      break;
    case WireError::name_too_long:
      c.malformed_name_too_long.add();
      break;
    case WireError::bad_pointer:
      c.malformed_bad_pointer.add();
      break;
    case WireError::compression_loop:
      c.malformed_compression_loop.add();
      break;
    case WireError::truncated:
      c.malformed_truncated.add();
      break;
    case WireError::trailing_garbage:
      c.malformed_trailing_garbage.add();
      break;
    case WireError::bad_opt:
      c.malformed_bad_opt.add();
      break;
    case WireError::none:
      break;
  }
}

// Rotation of the address list, per thread: no cache line shared between threads.
std::size_t next_rotation() {
  thread_local std::size_t rotation = 0;
  return rotation++;
}

// The gate as a client outside dns.intercept sees it: closed.
const std::shared_ptr<const health::HealthGate::Addresses>& no_cache_hosts() {
  static const auto none = std::make_shared<const health::HealthGate::Addresses>();
  return none;
}

// The answer for a client over its rate: TC=1 with no records is never larger than the query, so
// it amplifies nothing, and a real client retries over TCP, which costs it a handshake.
void set_truncated(std::vector<std::uint8_t>& out) {
  if (out.size() < wire_format::kHeaderSize) return;
  wire_format::put_u16(&out[2], wire_format::read_u16(&out[2]) | wire_format::kTc);
}

}  // namespace

QueryPolicy::QueryPolicy(PolicySettings settings, health::HealthGate& health, Upstream& upstream,
                         const core::Clock& clock, std::shared_ptr<core::Gate> in_flight)
    : health_(health),
      upstream_(upstream),
      in_flight_(std::move(in_flight)),
      log_(core::logger("dns")),
      intercepted_(settings.intercepted.begin(), settings.intercepted.end()),
      allow_(std::move(settings.allow)),
      scope_(settings.scope),
      answer_ttl_(static_cast<std::uint32_t>(settings.answer_ttl.count())),
      cache_(settings.cache_entries, settings.serve_stale, clock),
      limiter_(settings.per_client_qps, clock) {}

QueryHandler QueryPolicy::handler() {
  return {[](void* context, std::span<const std::uint8_t> packet, const core::Endpoint& client,
             bool over_tcp, std::vector<std::uint8_t>& out, const Defer& defer) {
            return static_cast<QueryPolicy*>(context)->answer(packet, client, over_tcp, out, defer);
          },
          this};
}

bool QueryPolicy::is_intercepted(std::string_view name) const {
  return intercepted_.find(name) != intercepted_.end();
}

// The healthy cache hosts, as this thread last saw them: re-read from the gate only when its
// generation moved, so that answering does not touch a lock or a reference count other threads
// also write. Valid until the next call on the same thread.
const QueryPolicy::Healthy& QueryPolicy::healthy_now() {
  struct Seen {
    std::uint64_t generation = 0;
    Healthy addresses;
  };
  thread_local Seen seen;
  auto generation = health_.generation();
  if (generation != seen.generation || !seen.addresses) {
    seen.addresses = health_.healthy();
    seen.generation = generation;
  }
  return seen.addresses;
}

Outcome QueryPolicy::answer(std::span<const std::uint8_t> packet, const core::Endpoint& client,
                            bool over_tcp, std::vector<std::uint8_t>& out, const Defer& defer) {
  (over_tcp ? counters_.queries_tcp : counters_.queries_udp).add();
  auto checked = check_message(packet);
  if (checked.error != WireError::none) {
    count_malformed(counters_, checked.error);
    return Outcome::dropped;
  }
  const auto& summary = checked.summary;
  if ((summary.flags & wire_format::kQr) != 0) {  // a response: answering it could start a loop
    counters_.responses_dropped.add();
    return Outcome::dropped;
  }
  Query query{packet, summary};
  auto max_size = max_answer_size(summary, over_tcp);
  if (!allow_.empty() && !core::contains_any(allow_, client.address)) {
    counters_.refused.add();
    out = error_answer(query, rcode::kRefused, max_size).wire;
    return Outcome::answered;
  }
  if (!over_tcp && !limiter_.allow(client.address)) {
    counters_.rate_limited.add();
    out = error_answer(query, rcode::kNoError, max_size).wire;
    set_truncated(out);
    return Outcome::answered;
  }
  if (wire_format::opcode(summary.flags) != wire_format::kOpcodeQuery) {
    counters_.not_implemented.add();
    out = error_answer(query, rcode::kNotImp, max_size).wire;
    return Outcome::answered;
  }
  if (summary.qdcount != 1) {
    counters_.format_errors.add();
    out = error_answer(query, rcode::kFormErr, max_size).wire;
    return Outcome::answered;
  }
  count_type(counters_, summary.qtype);
  bool intercepted_name = summary.qclass == rrclass::kIn && is_intercepted(summary.qname);
  const Healthy& gate_hosts = healthy_now();
  // A client the cache is not for gets the real answers, as if the gate were closed: for the
  // intercepted names, and for names whose CNAME chain leads into one.
  bool shut_out = false;
  if (!gate_hosts->empty() && scope_ != nullptr) {
    auto verdict = scope_->verdict(client.address);
    shut_out = verdict != health::ClientScope::Verdict::intercept;
    if (shut_out && intercepted_name) {
      (verdict == health::ClientScope::Verdict::bypassed ? counters_.client_bypassed
                                                         : counters_.client_outside_scope)
          .add();
    }
  }
  const Healthy& healthy = shut_out ? no_cache_hosts() : gate_hosts;
  if (intercepted_name && !healthy->empty()) {
    counters_.rewritten.add();
    if (scope_ != nullptr) scope_->note_intercepted(client.address);
    auto built = synthesize(query, *healthy, answer_ttl_, next_rotation(), max_size);
    if (built.truncated) counters_.truncated.add();
    out = std::move(built.wire);
    return Outcome::answered;
  }
  if (intercepted_name && !shut_out) counters_.intercepted_forwarded.add();
  return answer_forwarded(query, intercepted_name, healthy, max_size, out, defer);
}

RelayOptions QueryPolicy::relay_options(bool intercepted_name,
                                        const health::HealthGate::Addresses& healthy,
                                        std::uint32_t age) {
  RelayOptions options;
  options.age_seconds = age;
  // While the gate is closed an intercepted name is the real registry's: keep its TTL short so
  // clients come back to the cache soon after it recovers.
  if (intercepted_name) options.ttl_cap = answer_ttl_;
  options.intercepted = [this](std::string_view name) { return is_intercepted(name); };
  options.rewrite_to = healthy.empty() ? nullptr : &healthy;
  options.answer_ttl = answer_ttl_;
  options.rotation = next_rotation();
  return options;
}

std::vector<std::uint8_t> QueryPolicy::relayed(const Query& query, const UpstreamAnswer& answer,
                                               const RelayOptions& options, std::size_t max_size) {
  auto built = relay(query, answer, options, max_size);
  if (built.rewritten) counters_.cname_rewritten.add();
  if (built.truncated) counters_.truncated.add();
  return std::move(built.wire);
}

Outcome QueryPolicy::answer_forwarded(const Query& query, bool intercepted_name,
                                      const Healthy& healthy, std::size_t max_size,
                                      std::vector<std::uint8_t>& out, const Defer& defer) {
  const auto& summary = query.summary;
  CacheKeyView view{summary.qname, summary.qtype, summary.qclass, summary.dnssec_ok};
  if (auto hit = cache_.lookup(view, false)) {
    counters_.cache_hits.add();
    auto age = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::seconds>(hit->age).count());
    out = relayed(query, *hit->value, relay_options(intercepted_name, *healthy, age), max_size);
    return Outcome::answered;
  }
  counters_.forwarded.add();
  CacheKey key{summary.qname, summary.qtype, summary.qclass, summary.dnssec_ok};
  // The query's bytes must outlive the asynchronous forward.
  auto bytes = std::make_shared<std::vector<std::uint8_t>>(query.wire.begin(), query.wire.end());
  auto self = shared_from_this();
  auto holder = std::make_shared<core::GateHolder>(*in_flight_);
  upstream_.forward(*bytes, [self, bytes, summary, key, intercepted_name, healthy, max_size,
                             send = defer(), holder](ForwardResult result) {
    Query again{*bytes, summary};
    send(self->on_upstream(again, key, intercepted_name, *healthy, max_size, std::move(result)));
  });
  return Outcome::deferred;
}

std::vector<std::uint8_t> QueryPolicy::on_upstream(const Query& query, const CacheKey& key,
                                                   bool intercepted_name,
                                                   const health::HealthGate::Addresses& healthy,
                                                   std::size_t max_size, ForwardResult result) {
  if (result.status == ForwardResult::Status::answer &&
      check_message(result.answer).error == WireError::none) {
    if (auto parsed = parse_upstream(result.answer)) {
      if (parsed->cache_ttl) {
        auto ttl = *parsed->cache_ttl;
        if (intercepted_name) {
          ttl = std::min<std::chrono::seconds>(ttl, std::chrono::seconds(answer_ttl_));
        }
        cache_.insert(key, parsed->answer, ttl);
      }
      if (parsed->rcode == rcode::kServFail) counters_.servfail_sent.add();
      return relayed(query, *parsed->answer, relay_options(intercepted_name, healthy, 0), max_size);
    }
  }
  counters_.upstream_errors.add();
  if (result.status != ForwardResult::Status::answer) {
    log_->debug("upstream failed for {}: {}", query.summary.qname, result.error);
  }
  if (auto stale = cache_.lookup(key, true)) {
    counters_.stale_served.add();
    auto options = relay_options(intercepted_name, healthy, 0);
    options.ttl_cap = std::min(options.ttl_cap.value_or(kStaleTtl), kStaleTtl);
    return relayed(query, *stale->value, options, max_size);
  }
  counters_.servfail_sent.add();
  return error_answer(query, rcode::kServFail, max_size).wire;
}

}  // namespace pullthrough::dns
