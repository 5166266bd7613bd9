// The responder's hot path: answers written straight into wire format, without ldns. Synthesized
// answers for intercepted names, error answers, and cached upstream answers replayed with the
// client's ID, question and EDNS and their TTLs aged. Each writer handles only the message shapes
// real clients and servers send, and declines (returns false) otherwise; answers.cpp then falls
// back to ldns, which stays the reference codec. The tests and a differential fuzz target build
// every answer both ways and compare them.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/net.hpp"
#include "dns/answers.hpp"

namespace pullthrough::dns::wire_answers {

// True when the query's one question follows the header directly with an uncompressed name, which
// is what every real client sends. Only such queries take the fast path: their question can be
// copied byte for byte and pointed at from offset 12.
bool eligible(const Query& query);

// As dns::synthesize(); false (and `out` unspecified) when `query` is not eligible().
bool synthesize(const Query& query, const std::vector<core::IpAddress>& addresses,
                std::uint32_t ttl, std::size_t rotation, std::size_t max_size, Built& out);

// As dns::error_answer(); false when `query` is not eligible().
bool error_answer(const Query& query, std::uint8_t rcode_value, std::size_t max_size, Built& out);

// An upstream answer laid out for replay: its bytes without the OPT record, where each TTL sits,
// and the CNAME targets a rewrite would have to look at.
struct ReplayTemplate {
  std::vector<std::uint8_t> wire;  // header, question, records; OPT removed and ARCOUNT lowered
  struct Ttl {
    std::uint16_t offset;
    std::uint32_t value;
  };
  std::vector<Ttl> ttls;
  std::string qname;  // lower case, as in WireSummary
  std::uint16_t qtype = 0;
  std::uint16_t qclass = 0;
  std::size_t question_end = 12;
  // The CNAME chain from the question's name through the answer section, in order (lower case).
  // Empty when the answer holds no CNAME for the name.
  std::vector<std::string> cname_chain;
};

// Lays out `upstream` (a message that passed check_message()) for replay. Empty when it has a
// shape the fast path does not handle: not exactly one question, a compressed question name, an
// OPT record that is not the last record, a TSIG record, or a name that reads TTL bytes.
std::optional<ReplayTemplate> prepare(std::span<const std::uint8_t> upstream);

// As dns::relay() for an upstream answer without a CNAME rewrite to make. False when `query` is
// not eligible(), asked a different question than the template answers, or `options` would
// rewrite the template's CNAME chain.
bool relay(const Query& query, const ReplayTemplate& upstream, const RelayOptions& options,
           std::size_t max_size, Built& out);

}  // namespace pullthrough::dns::wire_answers
