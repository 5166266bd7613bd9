#include "dns/address_resolver.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/post.hpp>

#include "core/net.hpp"
#include "core/text.hpp"
#include "dns/wire.hpp"
#include "dns/wire_format.hpp"

namespace pullthrough::dns {
namespace {

using Done = std::function<void(core::ResolveResult)>;
using TimePoint = core::Clock::TimePoint;

using namespace wire_format;  // NOLINT(google-build-using-namespace): the format's own vocabulary
constexpr std::size_t kMaxLabel = 63;
// 255 octets on the wire (RFC 1035 section 3.1) are 253 characters of text.
constexpr std::size_t kMaxHostName = 253;
// Real chains (a CDN's alias, its region, its edge) take two or three hops; a longer one is a
// loop or a misconfiguration, and the bound keeps the walk's cost fixed.
constexpr int kMaxCnameHops = 8;
// RFC 2181 section 8: a TTL with the top bit set is to be read as zero.
constexpr std::uint32_t kMaxTtl = 0x7fffffff;
// Invalid names may hold anything, control bytes included, and their error ends up in logs and
// error bodies: only so much of it, and only printable.
constexpr std::size_t kMaxNameInError = 64;

// RFC 1123 section 2.1 host names, in the lower case callers promise: letters, digits and inner
// hyphens, labels of 1 to 63 characters. A name whose last label is all digits is an IPv4
// literal in one of inet_aton's forms ("127.0.0.1", "10.1"), which callers connect to directly;
// IPv6 literals fail on their ':'. Empty when `host` is fine, else what is wrong with it.
std::string_view host_name_problem(std::string_view host) {
  if (host.empty()) return "empty";
  if (host.size() > kMaxHostName) return "longer than 253 characters";
  std::size_t label = 0;
  bool all_digits = true;
  char previous = '.';
  for (const char c : host) {
    if (c == '.') {
      if (label == 0) return "empty label";
      if (previous == '-') return "label ends with '-'";
      label = 0;
      all_digits = true;
    } else {
      const bool digit = c >= '0' && c <= '9';
      if (!digit && !(c >= 'a' && c <= 'z') && c != '-') {
        return "character other than a-z, 0-9, '-' and '.'";
      }
      if (c == '-' && label == 0) return "label starts with '-'";
      if (++label > kMaxLabel) return "label longer than 63 characters";
      all_digits = all_digits && digit;
    }
    previous = c;
  }
  if (label == 0) return "empty label";
  if (previous == '-') return "label ends with '-'";
  if (all_digits) return "an IP address, not a name";
  return {};
}

void append_u16(std::vector<std::uint8_t>& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}

// `host` passed host_name_problem(), so every label fits its length byte. RD=1: the upstreams are
// recursive resolvers. No EDNS: a plain query is one every resolver understands (an old one may
// answer an OPT record with FORMERR, which ARES_FLAG_NOCHECKRESP hands us as an answer), and an
// address set too big for 512 bytes comes back with TC=1, which c-ares retries over TCP itself.
std::vector<std::uint8_t> make_query(std::string_view host, std::uint16_t type, std::uint16_t id) {
  std::vector<std::uint8_t> query;
  query.reserve(kHeaderSize + host.size() + 2 + 4);
  append_u16(query, id);
  append_u16(query, kRd);
  append_u16(query, 1);  // QDCOUNT
  append_u16(query, 0);
  append_u16(query, 0);
  append_u16(query, 0);
  std::size_t start = 0;
  while (start <= host.size()) {
    std::size_t end = host.find('.', start);
    if (end == std::string_view::npos) end = host.size();
    query.push_back(static_cast<std::uint8_t>(end - start));
    query.insert(query.end(), host.begin() + static_cast<std::ptrdiff_t>(start),
                 host.begin() + static_cast<std::ptrdiff_t>(end));
    start = end + 1;
  }
  query.push_back(0);
  append_u16(query, type);
  append_u16(query, rrclass::kIn);
  return query;
}

// What one query (A or AAAA) came to.
struct FamilyOutcome {
  enum class Kind : std::uint8_t { addresses, nodata, nxdomain, failed };
  Kind kind = Kind::failed;
  std::vector<core::IpAddress> addresses;
  std::uint32_t ttl = kMaxTtl;  // the smallest TTL of the records that led to the addresses
  std::string error;            // when failed
};

FamilyOutcome failed(std::string error) {
  FamilyOutcome out;
  out.kind = FamilyOutcome::Kind::failed;
  out.error = std::move(error);
  return out;
}

// An answer-section record that may lie on the path from the question's name to its addresses.
struct Record {
  std::string owner;
  std::uint16_t type = 0;
  std::uint32_t ttl = 0;
  std::size_t rdata = 0;
  std::size_t rdlength = 0;
};

std::optional<core::IpAddress> address_of(std::span<const std::uint8_t> message,
                                          const Record& record) {
  const auto rdata = message.subspan(record.rdata, record.rdlength);
  if (record.type == rrtype::kA && rdata.size() == 4) {
    asio::ip::address_v4::bytes_type bytes{};
    std::copy(rdata.begin(), rdata.end(), bytes.begin());
    return core::IpAddress(asio::ip::address_v4(bytes));
  }
  if (record.type == rrtype::kAaaa && rdata.size() == 16) {
    asio::ip::address_v6::bytes_type bytes{};
    std::copy(rdata.begin(), rdata.end(), bytes.begin());
    return core::IpAddress(asio::ip::address_v6(bytes));
  }
  return std::nullopt;
}

// Every byte of `message` is the upstream's. check_message() vouches for the structure; the
// offsets are checked again here anyway, since this walk does not depend on how it did that.
FamilyOutcome read_answer(std::span<const std::uint8_t> message, std::string_view host,
                          std::uint16_t qtype) {
  const WireCheck check = check_message(message);
  if (check.error != WireError::none) {
    return failed("malformed answer (" + std::string(to_string(check.error)) + ")");
  }
  const WireSummary& summary = check.summary;
  // Not the ID: the Forwarder's c-ares sends the query under an ID of its own and hands back the
  // answer under that ID, having matched ID and question itself. The question is checked again
  // because a response to some other question must never become this name's addresses.
  if ((summary.flags & kQr) == 0 || opcode(summary.flags) != kOpcodeQuery || summary.qdcount != 1 ||
      summary.qname != host || summary.qtype != qtype || summary.qclass != rrclass::kIn) {
    return failed("answer does not match the question");
  }
  // RFC 2181 section 9: a truncated answer may lack records; c-ares retries those over TCP, so
  // one that still arrives is a failure rather than a partial address set.
  if ((summary.flags & kTc) != 0) return failed("truncated answer");
  const unsigned rcode_value = rcode_of(summary.flags);
  if (rcode_value == rcode::kNxDomain) {
    return FamilyOutcome{FamilyOutcome::Kind::nxdomain, {}, 0, {}};
  }
  if (rcode_value != rcode::kNoError) return failed(rcode::name(rcode_value));

  std::vector<Record> records;
  std::size_t pos = summary.question_end;
  for (std::size_t i = 0; i < summary.ancount; ++i) {
    std::size_t next = 0;
    auto owner = read_name(message, pos, &next);
    if (!owner || next > message.size() || message.size() - next < kRecordFixedSize) {
      return failed("malformed answer (truncated)");
    }
    const std::uint16_t type = read_u16(message.data() + next);
    const std::uint16_t klass = read_u16(message.data() + next + 2);
    const std::uint32_t ttl = read_u32(message.data() + next + 4);
    const std::size_t rdlength = read_u16(message.data() + next + 8);
    const std::size_t rdata = next + kRecordFixedSize;
    if (message.size() - rdata < rdlength) return failed("malformed answer (truncated)");
    pos = rdata + rdlength;
    if (klass != rrclass::kIn || (type != qtype && type != rrtype::kCname)) continue;
    records.push_back(Record{std::move(*owner), type, ttl > kMaxTtl ? 0 : ttl, rdata, rdlength});
  }

  // RFC 1034 section 3.6.2: the answer holds the CNAME chain from the question's name, then the
  // records of its last name. Records owned by anything off that path are not ours to believe.
  FamilyOutcome out;
  out.kind = FamilyOutcome::Kind::nodata;
  std::string name(host);
  for (int hop = 0;; ++hop) {
    for (const Record& record : records) {
      if (record.type != qtype || record.owner != name) continue;
      auto address = address_of(message, record);
      if (!address) return failed("malformed answer (bad address record)");
      out.addresses.push_back(*address);
      out.ttl = std::min(out.ttl, record.ttl);
    }
    if (!out.addresses.empty()) {
      out.kind = FamilyOutcome::Kind::addresses;
      return out;
    }
    auto alias = std::find_if(records.begin(), records.end(), [&name](const Record& record) {
      return record.type == rrtype::kCname && record.owner == name;
    });
    if (alias == records.end()) return out;  // NODATA, perhaps at the end of a chain
    if (hop == kMaxCnameHops) {
      return failed("CNAME chain longer than " + std::to_string(kMaxCnameHops) + " hops");
    }
    std::size_t end = 0;
    auto target = read_name(message, alias->rdata, &end);
    if (!target || end != alias->rdata + alias->rdlength) {
      return failed("malformed answer (bad CNAME record)");
    }
    out.ttl = std::min(out.ttl, alias->ttl);
    name = std::move(*target);
  }
}

FamilyOutcome outcome_of(const ForwardResult& result, std::string_view host, std::uint16_t qtype) {
  switch (result.status) {
    case ForwardResult::Status::answer:
      return read_answer(result.answer, host, qtype);
    case ForwardResult::Status::timeout:
      return failed("timed out");
    case ForwardResult::Status::error:
      break;
  }
  return failed(result.error.empty() ? "upstream error" : "upstream error: " + result.error);
}

void append_unique(std::vector<core::IpAddress>& out, const std::vector<core::IpAddress>& more) {
  for (const auto& address : more) {
    if (std::find(out.begin(), out.end(), address) == out.end()) out.push_back(address);
  }
}

// The A and AAAA outcomes taken together.
struct Verdict {
  core::ResolveResult result;
  std::uint32_t ttl = kMaxTtl;
  // The resolvers did not answer the question (as opposed to NXDOMAIN or NODATA, which are
  // answers): RFC 8767 allows stale addresses then, and only then.
  bool lookup_failed = false;
};

Verdict judge(const std::string& host, const FamilyOutcome& v4, const FamilyOutcome& v6) {
  using Kind = FamilyOutcome::Kind;
  Verdict verdict;
  // IPv4 first: the proxy tries addresses in order, and IPv4 is what every network the appliance
  // sits on can reach (its test bed, network namespaces on IPv4 loopback, has nothing else).
  for (const auto* family : {&v4, &v6}) {
    if (family->kind != Kind::addresses) continue;
    append_unique(verdict.result.addresses, family->addresses);
    verdict.ttl = std::min(verdict.ttl, family->ttl);
  }
  if (!verdict.result.addresses.empty()) return verdict;
  if (v4.kind == Kind::nxdomain || v6.kind == Kind::nxdomain) {
    verdict.result.error = host + ": NXDOMAIN";
  } else if (v4.kind == Kind::nodata && v6.kind == Kind::nodata) {
    verdict.result.error = host + ": no A or AAAA records";
  } else {
    verdict.lookup_failed = true;
    if (v4.kind == Kind::failed && v6.kind == Kind::failed && v4.error != v6.error) {
      verdict.result.error = host + ": A: " + v4.error + "; AAAA: " + v6.error;
    } else {
      verdict.result.error = host + ": " + (v4.kind == Kind::failed ? v4.error : v6.error);
    }
  }
  return verdict;
}

core::ResolveResult failure(std::string error) {
  core::ResolveResult result;
  result.error = std::move(error);
  return result;
}

}  // namespace

struct AddressResolver::State : std::enable_shared_from_this<AddressResolver::State> {
  // One name's A and AAAA queries in flight, and everyone waiting for them.
  struct Lookup {
    std::uint64_t serial = 0;
    std::vector<Done> waiters;
    std::array<std::optional<FamilyOutcome>, 2> outcomes;  // A, AAAA
  };

  struct Entry {
    core::ResolveResult result;
    TimePoint fresh_until;  // answered from here until then
    TimePoint stale_until;  // its addresses may stand in for a failed lookup until then
    bool stale = false;     // `result` holds such addresses, standing in right now
  };

  asio::io_context& io;
  Upstream& upstream;
  const core::Clock& clock;
  const AddressResolverLimits limits;
  AddressResolverCounters counters;

  std::mutex mutex;
  // Guarded by `mutex`.
  std::unordered_map<std::string, Entry> cache;
  std::unordered_map<std::string, Lookup> lookups;
  std::uint64_t next_serial = 0;
  // The Forwarder's c-ares replaces the ID with one of its own, so this one guards nothing
  // there; it is random all the same, for any other Upstream that sends the query as it is.
  std::mt19937 random{std::random_device{}()};

  State(asio::io_context& io_context, Upstream& upstream_ref, const core::Clock& clock_ref,
        AddressResolverLimits resolver_limits)
      : io(io_context), upstream(upstream_ref), clock(clock_ref), limits(resolver_limits) {}

  void deliver(Done done, core::ResolveResult result) {
    asio::post(io, [done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }

  void resolve(const std::string& host, Done done) {
    if (auto problem = host_name_problem(host); !problem.empty()) {
      counters.invalid_names.add();
      return deliver(std::move(done),
                     failure("invalid host name \"" + core::printable(host, kMaxNameInError) +
                             "\": " + std::string(problem)));
    }
    std::uint64_t serial = 0;
    std::array<std::uint16_t, 2> ids{};
    {
      std::unique_lock lock(mutex);
      const TimePoint now = clock.now();
      if (auto found = cache.find(host); found != cache.end() && now < found->second.fresh_until) {
        (found->second.stale ? counters.stale_served : counters.cache_hits).add();
        core::ResolveResult result = found->second.result;
        lock.unlock();
        return deliver(std::move(done), std::move(result));
      }
      if (auto found = lookups.find(host); found != lookups.end()) {
        found->second.waiters.push_back(std::move(done));
        return;
      }
      if (lookups.size() >= limits.max_in_flight) {
        lock.unlock();
        counters.failures.add();
        return deliver(std::move(done), failure(host + ": too many lookups in flight"));
      }
      serial = ++next_serial;
      Lookup& lookup = lookups[host];
      lookup.serial = serial;
      lookup.waiters.push_back(std::move(done));
      std::uniform_int_distribution<unsigned> id(0, 0xffff);
      ids = {static_cast<std::uint16_t>(id(random)), static_cast<std::uint16_t>(id(random))};
    }
    counters.lookups.add();
    // Outside the lock: an upstream may call back before forward() returns (NoUpstream does).
    send(host, serial, 0, rrtype::kA, ids[0]);
    send(host, serial, 1, rrtype::kAaaa, ids[1]);
  }

  void send(const std::string& host, std::uint64_t serial, std::size_t family, std::uint16_t type,
            std::uint16_t id) {
    const auto query = make_query(host, type, id);
    upstream.forward(query, [self = shared_from_this(), host, serial, family,
                             type](const ForwardResult& result) {
      self->on_outcome(host, serial, family, outcome_of(result, host, type));
    });
  }

  void on_outcome(const std::string& host, std::uint64_t serial, std::size_t family,
                  FamilyOutcome outcome) {
    std::vector<Done> waiters;
    core::ResolveResult result;
    {
      std::lock_guard lock(mutex);
      auto found = lookups.find(host);
      // An upstream calling back twice, or late, must not complete a newer lookup of the name.
      if (found == lookups.end() || found->second.serial != serial ||
          found->second.outcomes.at(family)) {
        return;
      }
      auto& outcomes = found->second.outcomes;
      outcomes.at(family) = std::move(outcome);
      if (!outcomes[0] || !outcomes[1]) return;
      result = conclude(host, judge(host, *outcomes[0], *outcomes[1]));
      waiters = std::move(found->second.waiters);
      lookups.erase(found);
    }
    for (auto& done : waiters) deliver(std::move(done), result);
  }

  // Caches what a lookup came to and returns what its waiters get. Called with `mutex` held.
  core::ResolveResult conclude(const std::string& host, Verdict verdict) {
    const TimePoint now = clock.now();
    Entry entry;
    if (!verdict.result.addresses.empty()) {
      const auto ttl =
          std::max(limits.min_ttl, std::min(std::chrono::seconds(verdict.ttl), limits.max_ttl));
      entry.fresh_until = now + ttl;
      entry.stale_until = entry.fresh_until + limits.serve_stale;
    } else {
      auto old = cache.find(host);
      if (verdict.lookup_failed && old != cache.end() && !old->second.result.addresses.empty() &&
          now < old->second.stale_until) {
        // The failure is remembered as long as any other (RFC 9520), and answered with the old
        // addresses meanwhile; the stale window still counts from their own expiry.
        counters.stale_served.add();
        old->second.stale = true;
        old->second.fresh_until = std::min(now + limits.negative_ttl, old->second.stale_until);
        return old->second.result;
      }
      counters.failures.add();
      entry.fresh_until = now + limits.negative_ttl;
      entry.stale_until = entry.fresh_until;
    }
    entry.result = std::move(verdict.result);
    core::ResolveResult result = entry.result;
    store(host, std::move(entry), now);
    return result;
  }

  void store(const std::string& host, Entry entry, TimePoint now) {
    if (limits.max_entries == 0) return;
    if (auto found = cache.find(host); found != cache.end()) {
      found->second = std::move(entry);
      return;
    }
    if (cache.size() >= limits.max_entries) make_room(now);
    cache.emplace(host, std::move(entry));
  }

  // Entries of no further use go first, then the one whose use runs out soonest. A linear scan,
  // and only when full: the cache holds the registries and CDN hosts one appliance talks to.
  void make_room(TimePoint now) {
    std::erase_if(cache, [now](const auto& item) { return item.second.stale_until <= now; });
    while (!cache.empty() && cache.size() >= limits.max_entries) {
      cache.erase(std::min_element(cache.begin(), cache.end(), [](const auto& a, const auto& b) {
        return a.second.stale_until < b.second.stale_until;
      }));
    }
  }
};

AddressResolver::AddressResolver(boost::asio::io_context& io, Upstream& upstream,
                                 const core::Clock& clock, AddressResolverLimits limits)
    : state_(std::make_shared<State>(io, upstream, clock, limits)) {}

// Lookups in flight hold the state and finish on their own.
AddressResolver::~AddressResolver() = default;

void AddressResolver::resolve(std::string host, std::function<void(core::ResolveResult)> done) {
  state_->resolve(host, std::move(done));
}

const AddressResolverCounters& AddressResolver::counters() const { return state_->counters; }

}  // namespace pullthrough::dns
