// Differential fuzzing of the responder's two codecs: every answer the hand-written writers of
// dns/wire_answers.hpp produce must decode, with ldns, to exactly what the ldns path
// (dns::reference) produces for the same input, and both must fit the client's buffer.
//
// Input: one selector byte, then a DNS message. The message is used twice: as a client query
// (synthesized and error answers), and as an upstream answer relayed to a client whose query
// asks the upstream's question (with or without EDNS, with TTL ageing, a cap, and the gate open
// or closed, all chosen by the selector).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "core/net.hpp"
#include "dns/answers.hpp"
#include "dns/wire.hpp"
#include "dns/wire_answers.hpp"
#include "dns_test_support.hpp"
#include "fuzz_check.hpp"

// ldns/common.h defines bool, true and false as macros unless <stdbool.h> came first.
#include <stdbool.h>
// ldns after <stdbool.h>.
#include <ldns/ldns.h>

namespace {

namespace dns = pullthrough::dns;
using pullthrough::core::IpAddress;

using pullthrough::fuzz::check;

std::uint16_t read_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((static_cast<unsigned>(p[0]) << 8) | p[1]);
}

std::string hex(const std::vector<std::uint8_t>& bytes) {
  std::string out;
  char two[3];
  for (auto b : bytes) {
    std::snprintf(two, sizeof two, "%02x", b);
    out += two;
  }
  return out;
}

dns::testing::Decoded lower(dns::testing::Decoded d) {
  for (auto* section : {&d.question, &d.answer, &d.authority, &d.additional}) {
    for (auto& line : *section) {
      for (auto& c : line) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
  }
  return d;
}

void expect_same(const dns::Built& fast, const dns::Built& reference, std::size_t max_size) {
  check(fast.wire.size() <= max_size, "fast answer fits the client's buffer");
  check(reference.wire.size() <= max_size, "ldns answer fits the client's buffer");
  check(dns::check_message(fast.wire).error == dns::WireError::none, "fast answer is well formed");
  // Names compare case-insensitively (RFC 4343), and the two codecs compress differently, so a
  // name may take its case from the client's question in one answer and not in the other.
  auto f = lower(dns::testing::decode(fast.wire));
  auto r = lower(dns::testing::decode(reference.wire));
  check(f.ok, "ldns decodes the fast answer");
  if (!(f == r)) {
    std::fprintf(stderr, "fast %s:\n%s\nldns %s:\n%s\n", hex(fast.wire).c_str(),
                 dns::testing::describe(f).c_str(), hex(reference.wire).c_str(),
                 dns::testing::describe(r).c_str());
  }
  check(f == r, "fast and ldns answers mean the same");
  check(fast.truncated == reference.truncated, "both truncate alike");
}

// ldns 1.8.3 leaks a TSIG record when the additional section holds two: keep such messages away
// from it (dns_wire_fuzz explains).
bool has_two_tsig(std::span<const std::uint8_t> message, const dns::WireSummary& s) {
  std::size_t pos = 12;
  int tsig = 0;
  const std::size_t records = std::size_t{s.ancount} + s.nscount + s.arcount;
  for (std::size_t i = 0; i < s.qdcount + records; ++i) {
    std::size_t next = 0;
    if (!dns::read_name(message, pos, &next)) return true;
    if (i < s.qdcount) {
      pos = next + 4;
      continue;
    }
    if (read_u16(message.data() + next) == 250) ++tsig;
    pos = next + 10 + read_u16(message.data() + next + 8);
  }
  return tsig >= 2;
}

// Whether ldns ends every record where its RDLENGTH says it ends.
bool ldns_frames_like_us(std::span<const std::uint8_t> message, const dns::WireSummary& s) {
  std::size_t pos = 12;
  for (std::size_t i = 0; i < s.qdcount; ++i) {
    std::size_t next = 0;
    if (!dns::read_name(message, pos, &next)) return false;
    pos = next + 4;
  }
  const std::size_t records = std::size_t{s.ancount} + s.nscount + s.arcount;
  for (std::size_t i = 0; i < records; ++i) {
    std::size_t next = 0;
    if (!dns::read_name(message, pos, &next)) return false;
    const std::size_t end = next + 10 + read_u16(message.data() + next + 8);
    ldns_rr* rr = nullptr;
    std::size_t ldns_pos = pos;
    ldns_status status =
        ldns_wire2rr(&rr, message.data(), message.size(), &ldns_pos, LDNS_SECTION_ANSWER);
    if (rr != nullptr) ldns_rr_free(rr);
    if (status != LDNS_STATUS_OK || ldns_pos != end) return false;
    pos = end;
  }
  return true;
}

const std::vector<IpAddress> kAddresses{*pullthrough::core::parse_ip("192.0.2.10"),
                                        *pullthrough::core::parse_ip("fd00::10"),
                                        *pullthrough::core::parse_ip("192.0.2.11")};

void as_query(std::uint8_t selector, std::span<const std::uint8_t> message,
              const dns::WireSummary& summary) {
  dns::Query query{message, summary};
  if (!dns::wire_answers::eligible(query)) return;
  std::vector<IpAddress> addresses;
  for (std::size_t i = 0; i < kAddresses.size(); ++i) {
    if ((selector >> i) & 1U) addresses.push_back(kAddresses[i]);
  }
  std::size_t rotation = selector >> 5;
  for (bool tcp : {false, true}) {
    auto max = dns::max_answer_size(summary, tcp);
    dns::Built fast;
    check(dns::wire_answers::synthesize(query, addresses, 10, rotation, max, fast),
          "an eligible query is synthesized");
    expect_same(fast, dns::reference::synthesize(query, addresses, 10, rotation, max), max);
  }
  auto rc = static_cast<std::uint8_t>(selector % 6);
  dns::Built fast;
  check(dns::wire_answers::error_answer(query, rc, 512, fast), "an eligible query gets an error");
  expect_same(fast, dns::reference::error_answer(query, rc, 512), 512);
}

void as_upstream(std::uint8_t selector, std::span<const std::uint8_t> message,
                 const dns::WireSummary& summary) {
  if (summary.qdcount != 1 || has_two_tsig(message, summary)) return;
  auto parsed = dns::parse_upstream(message);
  auto replay = dns::wire_answers::prepare(message);
  if (!parsed || !replay) return;
  // The fast path relays the upstream's records byte for byte, framed by RDLENGTH. ldns reads
  // some malformed rdata (an A record of 5 bytes) by its own rules, and then sees the records
  // after it differently: it is no reference for such a message.
  bool ldns_frames_alike = ldns_frames_like_us(message, summary);

  // The client's query: the upstream's question (a case flipped by the selector), maybe EDNS.
  std::vector<std::uint8_t> query_bytes{0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  query_bytes.insert(query_bytes.end(), message.begin() + 12,
                     message.begin() + static_cast<std::ptrdiff_t>(summary.question_end));
  if ((selector & 1U) != 0) {
    for (std::size_t i = 12; i < summary.question_end - 4; ++i) {
      auto& c = query_bytes[i];
      if (c >= 'a' && c <= 'z') c = static_cast<std::uint8_t>(c - 'a' + 'A');
    }
  }
  if ((selector & 2U) != 0) {
    query_bytes[11] = 1;
    const std::uint8_t opt[] = {
        0, 0, 41, 0x04, 0xD0, 0, 0, static_cast<std::uint8_t>(selector & 0x80), 0, 0, 0};
    query_bytes.insert(query_bytes.end(), std::begin(opt), std::end(opt));
  }
  auto checked = dns::check_message(query_bytes);
  if (checked.error != dns::WireError::none) return;
  dns::Query query{query_bytes, checked.summary};

  dns::RelayOptions options;
  options.age_seconds = (selector & 4U) != 0 ? 100 : 0;
  if ((selector & 8U) != 0) options.ttl_cap = 10;
  // Names starting with 'q' count as intercepted; bit 4 opens the gate.
  options.intercepted = [](std::string_view name) { return !name.empty() && name[0] == 'q'; };
  std::vector<IpAddress> to{kAddresses[0]};
  if ((selector & 16U) != 0) options.rewrite_to = &to;
  for (bool tcp : {false, true}) {
    auto max = dns::max_answer_size(query.summary, tcp);
    dns::Built fast;
    if (!dns::wire_answers::relay(query, *replay, options, max, fast)) {
      check(options.rewrite_to != nullptr, "only a rewrite makes relay decline");
      continue;
    }
    if (!ldns_frames_alike) {
      check(fast.wire.size() <= max, "fast answer fits the client's buffer");
      check(dns::check_message(fast.wire).error == dns::WireError::none,
            "fast answer is well formed");
      continue;
    }
    expect_same(fast, dns::reference::relay(query, *parsed->answer, options, max), max);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t selector = data[0];
  const std::span<const std::uint8_t> message(data + 1, size - 1);
  auto checked = dns::check_message(message);
  if (checked.error != dns::WireError::none) return 0;
  as_query(selector, message, checked.summary);
  as_upstream(selector, message, checked.summary);
  return 0;
}
