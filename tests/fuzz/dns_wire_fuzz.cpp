// Fuzzes dns::check_message, the gate every packet passes before ldns decodes it. An accepted
// message must have a self-consistent summary, and ldns (the reference codec) must be able to
// decode whatever check_message vouched for: the question section always, and the whole message
// once each record's rdata is made opaque, since check_message frames records but does not judge
// what their rdata says.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "dns/wire.hpp"
#include "dns_test_support.hpp"
#include "fuzz_check.hpp"

// ldns/common.h defines bool, true and false as macros unless <stdbool.h> came first.
#include <stdbool.h>
// ldns after <stdbool.h>.
#include <ldns/ldns.h>

namespace {

using pullthrough::dns::check_message;
using pullthrough::dns::WireCheck;
using pullthrough::dns::WireError;
using pullthrough::dns::WireSummary;

// A private-use type (RFC 6895): ldns keeps its rdata as one opaque field.
constexpr std::uint16_t kOpaqueType = 0xff00;
constexpr std::uint16_t kTypeOpt = 41;

using pullthrough::fuzz::check;

std::uint16_t read_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((static_cast<unsigned>(p[0]) << 8) | p[1]);
}

// The independent oracle, on an ldns name.
std::string qname_text(const ldns_rdf* name) {
  return pullthrough::dns::testing::qname_text({ldns_rdf_data(name), ldns_rdf_size(name)});
}

// Where the name at `pos` ends in the stream. Only for names check_message already accepted.
std::size_t skip_name(const std::uint8_t* data, std::size_t pos) {
  while (data[pos] != 0 && (data[pos] & 0xc0) != 0xc0) pos += 1 + data[pos];
  return data[pos] == 0 ? pos + 1 : pos + 2;
}

struct Decoded {
  ldns_status status;
  ldns_pkt* packet;
  Decoded(const std::uint8_t* data, std::size_t size) : packet(nullptr) {
    status = ldns_wire2pkt(&packet, data, size);
  }
  ~Decoded() {
    if (packet != nullptr) ldns_pkt_free(packet);
  }
  Decoded(const Decoded&) = delete;
  Decoded& operator=(const Decoded&) = delete;
  bool ok() const { return status == LDNS_STATUS_OK; }
};

// ldns 1.8.3 leaks the first TSIG record when its additional section holds two, so ldns only
// sees the additional sections of messages whose types the fuzzer controls (see
// make_rdata_opaque); elsewhere it gets a copy with ARCOUNT zeroed.
std::vector<std::uint8_t> without_additional(std::span<const std::uint8_t> message) {
  std::vector<std::uint8_t> copy(message.begin(), message.end());
  copy[10] = 0;
  copy[11] = 0;
  return copy;
}

void expect_same_question(const WireSummary& summary, const ldns_pkt* packet) {
  check(summary.id == ldns_pkt_id(packet), "id matches ldns");
  check(summary.qdcount == ldns_pkt_qdcount(packet), "qdcount matches ldns");
  if (summary.qdcount == 0) return;
  const ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(packet), 0);
  check(question != nullptr, "ldns has the first question");
  check(summary.qtype == static_cast<std::uint16_t>(ldns_rr_get_type(question)),
        "qtype matches ldns");
  check(summary.qclass == static_cast<std::uint16_t>(ldns_rr_get_class(question)),
        "qclass matches ldns");
  check(summary.qname == qname_text(ldns_rr_owner(question)), "qname matches ldns");
}

void check_summary(std::span<const std::uint8_t> message, const WireSummary& summary) {
  const std::uint8_t* data = message.data();
  check(summary.id == read_u16(data), "id is the header's");
  check(summary.flags == read_u16(data + 2), "flags are the header's");
  check(summary.qdcount == read_u16(data + 4) && summary.ancount == read_u16(data + 6) &&
            summary.nscount == read_u16(data + 8) && summary.arcount == read_u16(data + 10),
        "counts are the header's");
  check(summary.question_end <= message.size(), "question_end inside the message");
  if (summary.qdcount > 0) {
    check(summary.question_offset == 12, "first question right after the header");
    check(summary.question_end >= summary.question_offset + 5, "question holds name, type, class");
    check(read_u16(data + summary.question_end - 4) == summary.qtype, "qtype before qclass");
    check(read_u16(data + summary.question_end - 2) == summary.qclass, "qclass ends question");
  } else {
    check(summary.question_end == 12 && summary.qname.empty(), "no question, no summary of one");
  }
  for (char c : summary.qname) {
    check(c < 'A' || c > 'Z', "qname has no upper case");
    check(c > 0x20 && c < 0x7f, "qname is graphic ASCII");
  }
  check(summary.has_opt ||
            (summary.udp_payload == 0 && summary.edns_version == 0 && !summary.dnssec_ok),
        "EDNS fields only with OPT");
}

// ldns must decode the header plus the first question alone: once an accepted name has jumped
// it reads nothing at or past its first pointer, so the question needs nothing after question_end.
void check_question_with_ldns(std::span<const std::uint8_t> message, const WireSummary& summary) {
  if (summary.qdcount == 0) return;
  std::vector<std::uint8_t> prefix(
      message.begin(), message.begin() + static_cast<std::ptrdiff_t>(summary.question_end));
  prefix[4] = 0;
  prefix[5] = 1;
  for (std::size_t i = 6; i < 12; ++i) prefix[i] = 0;
  check(check_message(prefix).error == WireError::none, "the first question alone is accepted");
  Decoded decoded(prefix.data(), prefix.size());
  check(decoded.ok(), "ldns decodes the first question alone");
  WireSummary one = summary;
  one.qdcount = 1;
  expect_same_question(one, decoded.packet);
}

// Retypes every record but OPT as opaque, following the framing of an accepted message. Returns
// whether every record already was opaque or OPT.
bool make_rdata_opaque(std::vector<std::uint8_t>& bytes, const WireSummary& summary) {
  std::uint8_t* data = bytes.data();
  bool unchanged = true;
  std::size_t pos = 12;
  for (std::size_t i = 0; i < summary.qdcount; ++i) pos = skip_name(data, pos) + 4;
  const std::size_t records = std::size_t{summary.ancount} + summary.nscount + summary.arcount;
  for (std::size_t i = 0; i < records; ++i) {
    pos = skip_name(data, pos);
    const std::uint16_t type = read_u16(data + pos);
    if (type != kTypeOpt && type != kOpaqueType) {
      data[pos] = static_cast<std::uint8_t>(kOpaqueType >> 8);
      data[pos + 1] = static_cast<std::uint8_t>(kOpaqueType & 0xff);
      unchanged = false;
    }
    pos += 10 + read_u16(data + pos + 8);
  }
  check(pos == bytes.size(), "records end where the message ends");
  return unchanged;
}

// With every record but OPT retyped as opaque, ldns sees exactly the framing check_message
// checked, so the two must agree on everything, EDNS included.
void check_framing_with_ldns(std::span<const std::uint8_t> message, const WireSummary& summary) {
  std::vector<std::uint8_t> opaque(message.begin(), message.end());
  make_rdata_opaque(opaque, summary);
  const WireCheck again = check_message(opaque);
  // A later name may point into a TYPE field just rewritten (legal, if odd), so the retyped
  // message can parse differently or not at all. The questions come first and cannot see it.
  if (again.error != WireError::none) return;
  check(again.summary.qname == summary.qname && again.summary.qtype == summary.qtype &&
            again.summary.qclass == summary.qclass &&
            again.summary.question_end == summary.question_end,
        "retyping records leaves the question alone");
  // Compare only when the retyped message's own framing has nothing left to retype.
  std::vector<std::uint8_t> settled(opaque);
  if (!make_rdata_opaque(settled, again.summary)) return;

  Decoded decoded(opaque.data(), opaque.size());
  if (!decoded.ok()) {
    std::fprintf(stderr, "ldns: %s\n", ldns_get_errorstr_by_id(decoded.status));
  }
  check(decoded.ok(), "ldns decodes the message once rdata is opaque");
  const ldns_pkt* packet = decoded.packet;
  expect_same_question(again.summary, packet);
  check(again.summary.ancount == ldns_pkt_ancount(packet), "ancount matches ldns");
  check(again.summary.nscount == ldns_pkt_nscount(packet), "nscount matches ldns");
  // ldns lifts the OPT record out of the additional section and its count.
  check(again.summary.arcount == ldns_pkt_arcount(packet) + (again.summary.has_opt ? 1 : 0),
        "arcount matches ldns");
  if (again.summary.has_opt) {
    check(again.summary.udp_payload == ldns_pkt_edns_udp_size(packet), "udp_payload matches ldns");
    check(again.summary.edns_version == ldns_pkt_edns_version(packet), "edns_version matches ldns");
    check(again.summary.dnssec_ok == ldns_pkt_edns_do(packet), "DO bit matches ldns");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> message(data, size);
  const WireCheck result = check_message(message);

  if (result.error != WireError::none) {
    // ldns is laxer (forward pointers, pointers into the header, no jump cap, trailing bytes,
    // OPT anywhere), so it may accept what we reject; but it cannot decode what is shorter than
    // a header or holds fewer bytes than the counts need.
    if (result.error == WireError::short_header) {
      Decoded decoded(data, size);
      check(!decoded.ok(), "ldns rejects a short header");
    } else if (result.error == WireError::bad_counts) {
      const std::vector<std::uint8_t> copy = without_additional(message);
      const std::size_t need = std::size_t{read_u16(data + 4)} * 5 +
                               (std::size_t{read_u16(data + 6)} + read_u16(data + 8)) * 11;
      if (need > size - 12) {
        Decoded decoded(copy.data(), copy.size());
        check(!decoded.ok(), "ldns rejects what cannot hold its counts");
      }
    }
    return 0;
  }

  check_summary(message, result.summary);
  check_question_with_ldns(message, result.summary);
  check_framing_with_ldns(message, result.summary);

  // The original message, real rdata and all: ldns may refuse rdata it cannot parse (an A record
  // of 3 bytes, a name inside rdata with a bad pointer), and may then frame later records
  // differently, but the header and question come before any rdata.
  const std::vector<std::uint8_t> copy = without_additional(message);
  Decoded decoded(copy.data(), copy.size());
  if (decoded.ok()) expect_same_question(result.summary, decoded.packet);
  return 0;
}
