// Building the responder's answers: synthesized answers for intercepted names, answers
// relayed from upstream (with a CNAME chain into an intercepted name rewritten, and TTLs aged or
// capped), and error answers. Every answer echoes the client's question byte for byte (0x20 case
// randomisation survives), carries OPT only when the query did, never sets AD on what we
// synthesize, and never exceeds `max_size` (TC=1 with the sections emptied instead).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/net.hpp"
#include "dns/wire.hpp"
#include "dns/wire_format.hpp"

namespace pullthrough::dns {

// The UDP payload size we advertise and never exceed without the client asking (the usual safe
// value, see dnsflagday 2020).
inline constexpr std::size_t kMaxUdpPayload = 1232;

// A client query that passed check_message().
struct Query {
  std::span<const std::uint8_t> wire;
  WireSummary summary;
};

// The largest answer a client can take: over UDP its EDNS size (at least 512, at most 1232), or
// 512 without EDNS (RFC 1035 section 4.2.1); over TCP 65535.
std::size_t max_answer_size(const WireSummary& query, bool over_tcp);

// An upstream answer, decoded once and shared by every client that gets it from the cache.
class UpstreamAnswer;

struct ParsedUpstream {
  std::shared_ptr<const UpstreamAnswer> answer;
  // How long it may be cached: the smallest TTL of the answer and authority records, or for a
  // negative answer min(SOA TTL, SOA MINIMUM) (RFC 2308 section 5). Empty: do not cache (SERVFAIL,
  // truncated, a negative answer without SOA, or no records).
  std::optional<std::chrono::seconds> cache_ttl;
  std::uint8_t rcode = 0;
};

// Decodes an upstream response that passed check_message(). Empty when ldns rejects it.
std::optional<ParsedUpstream> parse_upstream(std::span<const std::uint8_t> wire);

struct RelayOptions {
  // Seconds the answer spent in the cache: subtracted from every TTL (never below zero).
  std::uint32_t age_seconds = 0;
  // When set, every TTL is capped at this (an intercepted name forwarded while the gate is closed).
  std::optional<std::uint32_t> ttl_cap;
  // While the gate is open: which names are intercepted, and where they point. A CNAME chain that
  // reaches an intercepted name is cut there and answered for that name as synthesize() would.
  std::function<bool(std::string_view lower_name)> intercepted;
  const std::vector<core::IpAddress>* rewrite_to = nullptr;
  std::uint32_t answer_ttl = 10;
  std::size_t rotation = 0;
};

struct Built {
  std::vector<std::uint8_t> wire;
  bool rewritten = false;  // a CNAME chain was rewritten into an intercepted name
  bool truncated = false;  // TC set because it did not fit
};

// The answer for an intercepted name while the gate is open: A -> the IPv4 addresses, AAAA -> the
// IPv6 ones (rotated by `rotation`), ANY -> a minimal RFC 8482 answer, anything else or no
// address of the family -> NODATA with an SOA (TTL and MINIMUM = ttl) in the authority section.
Built synthesize(const Query& query, const std::vector<core::IpAddress>& addresses,
                 std::uint32_t ttl, std::size_t rotation, std::size_t max_size);

// An upstream answer relayed to the client that asked `query`.
Built relay(const Query& query, const UpstreamAnswer& upstream, const RelayOptions& options,
            std::size_t max_size);

// An answer with no records and the given rcode (SERVFAIL, REFUSED, FORMERR, NOTIMP).
Built error_answer(const Query& query, std::uint8_t rcode, std::size_t max_size);

// The same three built with ldns alone. The functions above use the hand-written writers of
// wire_answers.hpp for the shapes they handle and these for the rest; tests and the codec fuzz
// target compare the two.
namespace reference {
Built synthesize(const Query& query, const std::vector<core::IpAddress>& addresses,
                 std::uint32_t ttl, std::size_t rotation, std::size_t max_size);
Built relay(const Query& query, const UpstreamAnswer& upstream, const RelayOptions& options,
            std::size_t max_size);
Built error_answer(const Query& query, std::uint8_t rcode, std::size_t max_size);
}  // namespace reference

}  // namespace pullthrough::dns
