#include "dns/wire.hpp"

#include <utility>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "dns_test_support.hpp"

// ldns/common.h defines bool, true and false as macros unless <stdbool.h> came first.
#include <stdbool.h>
// ldns last, after gtest and <stdbool.h>.
#include <ldns/ldns.h>

namespace pullthrough::dns {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint16_t kTypeA = 1;
constexpr std::uint16_t kTypeNs = 2;
constexpr std::uint16_t kTypeAaaa = 28;
constexpr std::uint16_t kTypeOpt = 41;
constexpr std::uint16_t kClassIn = 1;

// Builds DNS messages byte by byte, so every malformation below is exactly the one named.
class Message {
 public:
  Message(std::uint16_t qdcount, std::uint16_t ancount, std::uint16_t nscount,
          std::uint16_t arcount, std::uint16_t id = 0x1234, std::uint16_t flags = 0x0100) {
    u16(id).u16(flags).u16(qdcount).u16(ancount).u16(nscount).u16(arcount);
  }

  Message& u8(std::uint8_t value) {
    bytes_.push_back(value);
    return *this;
  }
  Message& u16(std::uint16_t value) {
    return u8(static_cast<std::uint8_t>(value >> 8)).u8(static_cast<std::uint8_t>(value));
  }
  Message& u32(std::uint32_t value) {
    return u16(static_cast<std::uint16_t>(value >> 16)).u16(static_cast<std::uint16_t>(value));
  }
  Message& raw(std::initializer_list<std::uint8_t> values) {
    bytes_.insert(bytes_.end(), values);
    return *this;
  }
  // One label, taken byte for byte (it may hold '.' or any other byte).
  Message& label(std::string_view text) {
    u8(static_cast<std::uint8_t>(text.size()));
    bytes_.insert(bytes_.end(), text.begin(), text.end());
    return *this;
  }
  Message& pointer(std::size_t target) { return u16(static_cast<std::uint16_t>(0xc000 | target)); }
  // A dotted name ending in the root; "" is the root alone.
  Message& name(std::string_view dotted) {
    while (!dotted.empty()) {
      auto dot = dotted.find('.');
      label(dotted.substr(0, dot));
      dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
    }
    return u8(0);
  }
  Message& question(std::string_view dotted, std::uint16_t type = kTypeA,
                    std::uint16_t qclass = kClassIn) {
    return name(dotted).u16(type).u16(qclass);
  }
  // Type, class, TTL and rdata of a record whose owner name was just written.
  Message& record_tail(std::uint16_t type, std::uint16_t rclass, std::uint32_t ttl,
                       std::initializer_list<std::uint8_t> rdata) {
    u16(type).u16(rclass).u32(ttl).u16(static_cast<std::uint16_t>(rdata.size()));
    return raw(rdata);
  }
  Message& a_record(std::string_view dotted) {
    name(dotted);
    return record_tail(kTypeA, kClassIn, 300, {192, 0, 2, 1});
  }
  // OPT owned by the root; ttl is extended RCODE, version and the flags (DO = 0x8000).
  Message& opt(std::uint16_t payload = 1232, std::uint32_t ttl = 0) {
    u8(0);
    return record_tail(kTypeOpt, payload, ttl, {});
  }

  std::size_t size() const { return bytes_.size(); }
  const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

WireCheck check(const Message& message) { return check_message(message.bytes()); }
WireError error_of(const Message& message) { return check(message).error; }
WireError error_of(const Bytes& bytes) { return check_message(bytes).error; }

}  // namespace

// gtest finds PrintTo by argument-dependent lookup, so it lives in WireError's namespace.
void PrintTo(WireError error, std::ostream* out) { *out << to_string(error); }

namespace {

// ---- one regression test per WireError ----

TEST(WireCheckTest, ShortHeaderIsRejected) {
  EXPECT_EQ(error_of(Bytes{}), WireError::short_header);
  EXPECT_EQ(error_of(Bytes{0x12}), WireError::short_header);
  EXPECT_EQ(error_of(Bytes(11, 0)), WireError::short_header);
  EXPECT_EQ(error_of(Bytes(12, 0)), WireError::none);
}

TEST(WireCheckTest, BadCountsAreRejected) {
  // A question claimed, nothing after the header.
  EXPECT_EQ(error_of(Message(1, 0, 0, 0)), WireError::bad_counts);
  // Every count at its maximum against a small body.
  EXPECT_EQ(error_of(Message(0xffff, 0xffff, 0xffff, 0xffff).question("a")), WireError::bad_counts);
  // One full question, but an answer needs at least 11 more bytes (root owner + 10).
  EXPECT_EQ(error_of(Message(1, 1, 0, 0).question("a").raw({0, 0, 1, 0, 1, 0, 0, 0})),
            WireError::bad_counts);
}

TEST(WireCheckTest, LabelLength64IsRejected) {
  Message message(1, 0, 0, 0);
  message.label(std::string(64, 'a')).u8(0).u16(kTypeA).u16(kClassIn);
  EXPECT_EQ(error_of(message), WireError::bad_label);

  Message longest(1, 0, 0, 0);
  longest.label(std::string(63, 'a')).u8(0).u16(kTypeA).u16(kClassIn);
  EXPECT_EQ(error_of(longest), WireError::none);
}

TEST(WireCheckTest, ReservedLabelType40IsRejected) {
  // 0x41 reads as "extended label type 0x40" (RFC 6891 retired it), not as a length of 65.
  Message message(1, 0, 0, 0);
  message.raw({0x41, 'a'}).u8(0).u16(kTypeA).u16(kClassIn);
  EXPECT_EQ(error_of(message), WireError::bad_label);
}

TEST(WireCheckTest, ReservedLabelType80IsRejected) {
  // 0x80 0x0c would be a pointer to the question if the top bits were 11.
  Message message(1, 1, 0, 0);
  message.question("a").raw({0x80, 0x0c}).record_tail(kTypeA, kClassIn, 0, {1, 2, 3, 4});
  EXPECT_EQ(error_of(message), WireError::bad_label);
}

TEST(WireCheckTest, NameTooLongIsRejected) {
  // 128 one-byte labels: 128 * 2 + 1 = 257 octets.
  Message too_long(1, 0, 0, 0);
  for (int i = 0; i < 128; ++i) too_long.label("a");
  too_long.u8(0).u16(kTypeA).u16(kClassIn);
  EXPECT_EQ(error_of(too_long), WireError::name_too_long);

  // One octet past the limit: 126 one-byte labels, one two-byte label and the root.
  Message one_over(1, 0, 0, 0);
  for (int i = 0; i < 126; ++i) one_over.label("a");
  one_over.label("bb").u8(0).u16(kTypeA).u16(kClassIn);
  EXPECT_EQ(error_of(one_over), WireError::name_too_long);

  // 127 of them make exactly 255 octets, the limit itself.
  Message longest(1, 0, 0, 0);
  for (int i = 0; i < 127; ++i) longest.label("a");
  longest.u8(0).u16(kTypeA).u16(kClassIn);
  auto result = check(longest);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_EQ(result.summary.qname.size(), 127U * 2 - 1);
}

TEST(WireCheckTest, NameTooLongThroughPointerIsRejected) {
  // Each part is fine alone: the question's name is exactly 255 octets, and the answer's owner
  // puts a 4-octet label in front of it.
  Message message(1, 1, 0, 0);
  message.label(std::string(63, 'a'))
      .label(std::string(63, 'b'))
      .label(std::string(63, 'c'))
      .label(std::string(61, 'd'))
      .u8(0)
      .u16(kTypeA)
      .u16(kClassIn);
  message.label("xyz").pointer(12).record_tail(kTypeA, kClassIn, 0, {1, 2, 3, 4});
  EXPECT_EQ(error_of(message), WireError::name_too_long);
}

TEST(WireCheckTest, PointerOutsideMessageIsRejected) {
  Message message(1, 0, 0, 0);
  message.pointer(0x3fff).u16(kTypeA).u16(kClassIn);
  EXPECT_EQ(error_of(message), WireError::bad_pointer);

  // One past the last byte is outside too.
  Message just_past(1, 0, 0, 0);
  just_past.pointer(18).u16(kTypeA).u16(kClassIn);
  ASSERT_EQ(just_past.size(), 18U);
  EXPECT_EQ(error_of(just_past), WireError::bad_pointer);
}

TEST(WireCheckTest, PointerIntoHeaderIsRejected) {
  for (std::size_t target : {0U, 4U, 11U}) {
    Message message(1, 1, 0, 0);
    message.question("a").pointer(target).record_tail(kTypeA, kClassIn, 0, {1, 2, 3, 4});
    EXPECT_EQ(error_of(message), WireError::bad_pointer) << "target " << target;
  }
}

TEST(WireCheckTest, SelfPointingPointerIsRejected) {
  Message message(1, 0, 0, 0);
  message.pointer(12).u16(kTypeA).u16(kClassIn);
  EXPECT_EQ(error_of(message), WireError::compression_loop);
}

TEST(WireCheckTest, ForwardPointerIsRejected) {
  // The question points at the answer's owner, which comes later in the message.
  Message message(1, 1, 0, 0);
  message.pointer(18).u16(kTypeA).u16(kClassIn);
  ASSERT_EQ(message.size(), 18U);
  message.a_record("a");
  EXPECT_EQ(error_of(message), WireError::compression_loop);
}

TEST(WireCheckTest, TwoPointerLoopIsRejected) {
  // Owner at 19 points to 21, which points back to 19.
  Message message(1, 1, 0, 0);
  message.question("a");
  ASSERT_EQ(message.size(), 19U);
  message.pointer(21).pointer(19).record_tail(kTypeA, kClassIn, 0, {1, 2, 3, 4});
  EXPECT_EQ(error_of(message), WireError::compression_loop);
}

TEST(WireCheckTest, BackwardPointerLoopThroughLabelIsRejected) {
  // Every pointer goes backwards, yet the label at 19 is followed by a pointer back to 19. The
  // label is long enough that the name would pass 255 octets before the jump cap: the loop is
  // still reported as a loop.
  Message message(1, 1, 0, 0);
  message.question("a");
  ASSERT_EQ(message.size(), 19U);
  message.label("loop-label").pointer(19).record_tail(kTypeA, kClassIn, 0, {1, 2, 3, 4});
  EXPECT_EQ(error_of(message), WireError::compression_loop);
}

TEST(WireCheckTest, PointedNameRunningOverThePointerIsRejected) {
  // The pointer at 15 goes back to 14, but the byte there starts a 5-byte label that covers the
  // pointer itself and the question's type and class, and the name only ends inside the answer.
  // ldns decodes this; we refuse it, so a question never depends on bytes after it.
  Message message(1, 1, 0, 0);
  message.raw({0x02, 0x00, 0x05}).pointer(14).u16(kTypeA).u16(kClassIn);
  ASSERT_EQ(message.size(), 21U);
  message.u8(0).record_tail(kTypeA, kClassIn, 0, {1, 2, 3, 4});
  EXPECT_EQ(error_of(message), WireError::compression_loop);
}

TEST(WireCheckTest, TooManyJumpsAreRejected) {
  // Question 0 is the root; every later question's name points at the one before, so the last
  // name of a message with n questions takes n - 1 jumps.
  auto chain = [](std::uint16_t questions) {
    Message message(questions, 0, 0, 0);
    message.question("");
    for (std::size_t i = 1; i < questions; ++i) {
      message.pointer(i == 1 ? 12 : 17 + (i - 2) * 6).u16(kTypeA).u16(kClassIn);
    }
    return message;
  };
  EXPECT_EQ(error_of(chain(65)), WireError::none);  // 64 jumps
  EXPECT_EQ(error_of(chain(66)), WireError::compression_loop);
}

TEST(WireCheckTest, TruncatedQuestionIsRejected) {
  // QCLASS missing, or one byte of it.
  Message no_class(1, 0, 0, 0);
  no_class.name("abc").u16(kTypeA);
  EXPECT_EQ(error_of(no_class), WireError::truncated);
  Message half_class(1, 0, 0, 0);
  half_class.name("abc").u16(kTypeA).u8(0);
  EXPECT_EQ(error_of(half_class), WireError::truncated);

  // The name's last label runs past the end.
  Message cut_label(1, 0, 0, 0);
  cut_label.label("abc").raw({5, 'd', 'e'});
  EXPECT_EQ(error_of(cut_label), WireError::truncated);

  // The name never reaches its root byte.
  Message no_root(1, 0, 0, 0);
  no_root.label("abc").label("de");
  EXPECT_EQ(error_of(no_root), WireError::truncated);

  // A pointer cut after its first byte.
  Message cut_pointer(1, 0, 0, 0);
  cut_pointer.label("abc").label("de").u8(0xc0);
  EXPECT_EQ(error_of(cut_pointer), WireError::truncated);
}

TEST(WireCheckTest, TruncatedRdataIsRejected) {
  Message message(1, 1, 0, 0);
  message.question("a").name("a").u16(kTypeA).u16(kClassIn).u32(300).u16(4).raw({192, 0, 2});
  EXPECT_EQ(error_of(message), WireError::truncated);

  // The record's fixed part itself cut short, in RDLENGTH.
  Message fixed(1, 1, 0, 0);
  fixed.question("a").name("a").u16(kTypeA).u16(kClassIn).u32(300).u8(0);
  EXPECT_EQ(error_of(fixed), WireError::truncated);
}

TEST(WireCheckTest, TrailingGarbageIsRejected) {
  Message message(1, 0, 0, 0);
  message.question("example.com").u8(0);
  EXPECT_EQ(error_of(message), WireError::trailing_garbage);

  Message with_answer(1, 1, 0, 0);
  with_answer.question("example.com").a_record("example.com").raw({1, 2, 3});
  EXPECT_EQ(error_of(with_answer), WireError::trailing_garbage);
}

TEST(WireCheckTest, OptWithNonRootOwnerIsRejected) {
  Message message(1, 0, 0, 1);
  message.question("a").name("a").record_tail(kTypeOpt, 1232, 0, {});
  EXPECT_EQ(error_of(message), WireError::bad_opt);

  // Even a pointer that leads to a root byte: RFC 6891 asks for the single zero byte.
  Message via_pointer(1, 0, 0, 1);
  via_pointer.question("").pointer(12).record_tail(kTypeOpt, 1232, 0, {});
  EXPECT_EQ(error_of(via_pointer), WireError::bad_opt);
}

TEST(WireCheckTest, OptInAnswerSectionIsRejected) {
  Message message(1, 1, 0, 0);
  message.question("a").opt();
  EXPECT_EQ(error_of(message), WireError::bad_opt);
}

TEST(WireCheckTest, OptInAuthoritySectionIsRejected) {
  Message message(1, 0, 1, 0);
  message.question("a").opt();
  EXPECT_EQ(error_of(message), WireError::bad_opt);
}

TEST(WireCheckTest, TwoOptsAreRejected) {
  Message message(1, 0, 0, 2);
  message.question("a").opt().opt();
  EXPECT_EQ(error_of(message), WireError::bad_opt);
}

// ---- what an accepted message reports ----

TEST(WireCheckTest, AQueryWithEdnsFillsEverySummaryField) {
  // RD and AD set; OPT: payload 1232, extended RCODE 0, version 0, DO.
  Message message(1, 0, 0, 1, 0xbeef, 0x0120);
  message.question("www.example.com", kTypeA, kClassIn).opt(1232, 0x00008000);
  auto result = check(message);
  ASSERT_EQ(result.error, WireError::none);
  const auto& summary = result.summary;
  EXPECT_EQ(summary.id, 0xbeef);
  EXPECT_EQ(summary.flags, 0x0120);
  EXPECT_EQ(summary.qdcount, 1);
  EXPECT_EQ(summary.ancount, 0);
  EXPECT_EQ(summary.nscount, 0);
  EXPECT_EQ(summary.arcount, 1);
  EXPECT_EQ(summary.qname, "www.example.com");
  EXPECT_EQ(summary.qtype, kTypeA);
  EXPECT_EQ(summary.qclass, kClassIn);
  EXPECT_EQ(summary.question_offset, 12U);
  EXPECT_EQ(summary.question_end, 12U + 17 + 4);
  EXPECT_TRUE(summary.has_opt);
  EXPECT_EQ(summary.udp_payload, 1232);
  EXPECT_EQ(summary.edns_version, 0);
  EXPECT_TRUE(summary.dnssec_ok);
}

TEST(WireCheckTest, EdnsFieldsComeFromTheRightBits) {
  // Extended RCODE 0xff, version 1, every flag bit but DO set; a payload below 512 is reported
  // as sent.
  Message message(1, 0, 0, 1);
  message.question("example.com", kTypeAaaa).opt(256, 0xff017fff);
  auto result = check(message);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_TRUE(result.summary.has_opt);
  EXPECT_EQ(result.summary.udp_payload, 256);
  EXPECT_EQ(result.summary.edns_version, 1);
  EXPECT_FALSE(result.summary.dnssec_ok);
  EXPECT_EQ(result.summary.qtype, kTypeAaaa);

  Message plain(1, 0, 0, 0);
  plain.question("example.com");
  auto without = check(plain);
  ASSERT_EQ(without.error, WireError::none);
  EXPECT_FALSE(without.summary.has_opt);
  EXPECT_EQ(without.summary.udp_payload, 0);
  EXPECT_FALSE(without.summary.dnssec_ok);
}

TEST(WireCheckTest, MixedCaseQnameIsLowerCased) {
  Message message(1, 0, 0, 0);
  message.question("WwW.ExAmPlE.CoM");
  auto result = check(message);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_EQ(result.summary.qname, "www.example.com");
}

TEST(WireCheckTest, AmbiguousLabelBytesAreEscaped) {
  // One label "a.b" must not read like the two labels "a" and "b"; a backslash must not start
  // what looks like an escape; bytes outside graphic ASCII are escaped and never lower-cased.
  Message message(1, 0, 0, 0);
  message.label("a.b").label("x\\046").label(std::string("N\0 \x7f\xc3", 5)).label("b").u8(0);
  message.u16(kTypeA).u16(kClassIn);
  auto result = check(message);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_EQ(result.summary.qname, "a\\046b.x\\092046.n\\000\\032\\127\\195.b");

  Message two_labels(1, 0, 0, 0);
  two_labels.question("a.b");
  EXPECT_EQ(check(two_labels).summary.qname, "a.b");
}

TEST(WireCheckTest, LongestEscapedNameIsSpelledOutWhole) {
  // 255 octets of labels whose every byte needs \DDD: the longest text a qname can have.
  Message message(1, 0, 0, 0);
  for (std::size_t length : {63U, 63U, 63U, 61U}) message.label(std::string(length, '\xff'));
  message.u8(0).u16(kTypeA).u16(kClassIn);
  auto result = check(message);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_EQ(result.summary.qname.size(), 250U * 4 + 3);
  EXPECT_EQ(result.summary.qname.substr(0, 8), "\\255\\255");
  EXPECT_EQ(result.summary.qname[63 * 4], '.');
}

TEST(WireCheckTest, RootQnameIsEmpty) {
  Message message(1, 0, 0, 0);
  message.question("", kTypeNs);
  auto result = check(message);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_EQ(result.summary.qname, "");
  EXPECT_EQ(result.summary.qtype, kTypeNs);
  EXPECT_EQ(result.summary.question_offset, 12U);
  EXPECT_EQ(result.summary.question_end, 17U);
}

TEST(WireCheckTest, QdcountZeroIsAccepted) {
  auto header_only = check(Message(0, 0, 0, 0, 0x4242, 0x8180));
  ASSERT_EQ(header_only.error, WireError::none);
  EXPECT_EQ(header_only.summary.id, 0x4242);
  EXPECT_EQ(header_only.summary.flags, 0x8180);
  EXPECT_EQ(header_only.summary.qname, "");
  EXPECT_EQ(header_only.summary.question_offset, 12U);
  EXPECT_EQ(header_only.summary.question_end, 12U);

  // Records without a question (a NOTIFY-style or DSO-style message) are walked all the same.
  Message records(0, 1, 0, 1);
  records.a_record("example.com").opt();
  auto result = check(records);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_EQ(result.summary.ancount, 1);
  EXPECT_TRUE(result.summary.has_opt);
}

TEST(WireCheckTest, SummaryDescribesTheFirstOfSeveralQuestions) {
  Message message(2, 0, 0, 0);
  message.question("first.example", kTypeAaaa);
  const std::size_t second = message.size();
  message.label("second").pointer(18).u16(kTypeA).u16(kClassIn);
  auto result = check(message);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_EQ(result.summary.qname, "first.example");
  EXPECT_EQ(result.summary.qtype, kTypeAaaa);
  EXPECT_EQ(result.summary.question_end, second);
}

TEST(WireCheckTest, PointerBackIntoTheSameNameIsFollowed) {
  // Label "\0" at 12, then a pointer at 14 to offset 13, which is a root byte. Odd, but it points
  // strictly before itself and ends, so it is not a loop (ldns decodes it the same way).
  Message message(1, 0, 0, 0);
  message.raw({0x01, 0x00}).pointer(13).u16(kTypeA).u16(kClassIn);
  auto result = check(message);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_EQ(result.summary.qname, "\\000");
  EXPECT_EQ(result.summary.question_end, 20U);
}

TEST(WireCheckTest, ToStringNamesEveryError) {
  EXPECT_EQ(to_string(WireError::none), "none");
  EXPECT_EQ(to_string(WireError::short_header), "short_header");
  EXPECT_EQ(to_string(WireError::bad_counts), "bad_counts");
  EXPECT_EQ(to_string(WireError::bad_label), "bad_label");
  EXPECT_EQ(to_string(WireError::name_too_long), "name_too_long");
  EXPECT_EQ(to_string(WireError::bad_pointer), "bad_pointer");
  EXPECT_EQ(to_string(WireError::compression_loop), "compression_loop");
  EXPECT_EQ(to_string(WireError::truncated), "truncated");
  EXPECT_EQ(to_string(WireError::trailing_garbage), "trailing_garbage");
  EXPECT_EQ(to_string(WireError::bad_opt), "bad_opt");
  EXPECT_EQ(to_string(static_cast<WireError>(200)), "unknown");
}

// ---- ldns as the reference codec ----

struct PktFree {
  void operator()(ldns_pkt* packet) const { ldns_pkt_free(packet); }
};
using Pkt = std::unique_ptr<ldns_pkt, PktFree>;

// The independent oracle, on an ldns name.
std::string qname_text(const ldns_rdf* name) {
  return testing::qname_text({ldns_rdf_data(name), ldns_rdf_size(name)});
}

Pkt query(const char* name, ldns_rr_type type, std::uint16_t id) {
  ldns_pkt* packet = nullptr;
  if (ldns_pkt_query_new_frm_str(&packet, name, type, LDNS_RR_CLASS_IN, LDNS_RD) !=
      LDNS_STATUS_OK) {
    return nullptr;
  }
  ldns_pkt_set_id(packet, id);
  return Pkt(packet);
}

bool push(ldns_pkt* packet, ldns_pkt_section section, const char* text) {
  ldns_rr* rr = nullptr;
  if (ldns_rr_new_frm_str(&rr, text, 300, nullptr, nullptr) != LDNS_STATUS_OK) return false;
  return ldns_pkt_push_rr(packet, section, rr);
}

Bytes wire_of(const ldns_pkt* packet) {
  std::uint8_t* buffer = nullptr;
  std::size_t size = 0;
  if (ldns_pkt2wire(&buffer, packet, &size) != LDNS_STATUS_OK) return {};
  Bytes out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

bool has_pointer(const Bytes& wire) {
  for (std::size_t i = 12; i + 1 < wire.size(); ++i) {
    if ((wire[i] & 0xc0) == 0xc0 && (((wire[i] & 0x3f) << 8) | wire[i + 1]) == 12) return true;
  }
  return false;
}

// Checks `wire` with both decoders and compares what both can see.
void expect_agreement(const Bytes& wire) {
  ASSERT_FALSE(wire.empty());
  auto result = check_message(wire);
  ASSERT_EQ(result.error, WireError::none);
  const auto& summary = result.summary;

  ldns_pkt* parsed = nullptr;
  ASSERT_EQ(ldns_wire2pkt(&parsed, wire.data(), wire.size()), LDNS_STATUS_OK);
  Pkt reference(parsed);
  EXPECT_EQ(summary.id, ldns_pkt_id(parsed));
  EXPECT_EQ((summary.flags & 0x8000) != 0, ldns_pkt_qr(parsed));
  EXPECT_EQ((summary.flags >> 11) & 0xf, static_cast<int>(ldns_pkt_get_opcode(parsed)));
  EXPECT_EQ((summary.flags & 0x0100) != 0, ldns_pkt_rd(parsed));
  EXPECT_EQ(summary.flags & 0xf, static_cast<int>(ldns_pkt_get_rcode(parsed)));
  EXPECT_EQ(summary.qdcount, ldns_pkt_qdcount(parsed));
  EXPECT_EQ(summary.ancount, ldns_pkt_ancount(parsed));
  EXPECT_EQ(summary.nscount, ldns_pkt_nscount(parsed));
  // ldns takes the OPT record out of the additional section and its count.
  EXPECT_EQ(summary.arcount, ldns_pkt_arcount(parsed) + (summary.has_opt ? 1 : 0));
  EXPECT_EQ(summary.has_opt, ldns_pkt_edns(parsed));
  if (summary.has_opt) {
    EXPECT_EQ(summary.udp_payload, ldns_pkt_edns_udp_size(parsed));
    EXPECT_EQ(summary.edns_version, ldns_pkt_edns_version(parsed));
    EXPECT_EQ(summary.dnssec_ok, ldns_pkt_edns_do(parsed));
  }
  if (summary.qdcount > 0) {
    const ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(parsed), 0);
    ASSERT_NE(question, nullptr);
    EXPECT_EQ(summary.qtype, static_cast<int>(ldns_rr_get_type(question)));
    EXPECT_EQ(summary.qclass, static_cast<int>(ldns_rr_get_class(question)));
    EXPECT_EQ(summary.qname, qname_text(ldns_rr_owner(question)));
  }
}

TEST(WireLdnsTest, ResponseWithCompressionPointersIsAccepted) {
  auto packet = query("www.example.com.", LDNS_RR_TYPE_A, 0x5151);
  ASSERT_TRUE(packet);
  ldns_pkt_set_qr(packet.get(), true);
  ldns_pkt_set_ra(packet.get(), true);
  ASSERT_TRUE(
      push(packet.get(), LDNS_SECTION_ANSWER, "www.example.com. IN CNAME web.example.com."));
  ASSERT_TRUE(push(packet.get(), LDNS_SECTION_ANSWER, "web.example.com. IN A 192.0.2.1"));
  ASSERT_TRUE(push(packet.get(), LDNS_SECTION_ANSWER, "web.example.com. IN A 192.0.2.2"));
  ASSERT_TRUE(push(packet.get(), LDNS_SECTION_AUTHORITY, "example.com. IN NS ns1.example.com."));
  ASSERT_TRUE(push(packet.get(), LDNS_SECTION_ADDITIONAL, "ns1.example.com. IN A 192.0.2.53"));
  auto wire = wire_of(packet.get());
  ASSERT_TRUE(has_pointer(wire)) << "ldns did not compress; the test would prove nothing";

  auto result = check_message(wire);
  ASSERT_EQ(result.error, WireError::none);
  EXPECT_EQ(result.summary.id, 0x5151);
  EXPECT_EQ(result.summary.flags & 0x8180, 0x8180);
  EXPECT_EQ(result.summary.ancount, 3);
  EXPECT_EQ(result.summary.nscount, 1);
  EXPECT_EQ(result.summary.arcount, 1);
  EXPECT_EQ(result.summary.qname, "www.example.com");
  expect_agreement(wire);
}

TEST(WireLdnsTest, AgreesWithLdnsOnOddHandMadeMessages) {
  Message into_own_name(1, 0, 0, 0);
  into_own_name.raw({0x01, 0x00}).pointer(13).u16(kTypeA).u16(kClassIn);

  Message escaped(1, 0, 0, 1);
  escaped.label("a.b").label("x\\046").label(std::string("N\0 \x7f\xc3", 5)).u8(0);
  escaped.u16(kTypeA).u16(kClassIn).opt(4096, 0x00018000);

  Message longest(1, 0, 0, 0);
  for (int i = 0; i < 127; ++i) longest.label("A");
  longest.u8(0).u16(kTypeAaaa).u16(kClassIn);

  Message no_question(0, 1, 1, 0, 0x0102, 0x2400);
  no_question.a_record("example.com").name("com").record_tail(kTypeNs, kClassIn, 60, {0xc0, 12});

  for (const Message* message : {&into_own_name, &escaped, &longest, &no_question}) {
    SCOPED_TRACE(::testing::PrintToString(message->bytes()));
    expect_agreement(message->bytes());
  }
}

TEST(WireLdnsTest, AgreesWithLdnsOnValidMessages) {
  std::vector<Pkt> packets;

  packets.push_back(query("example.com.", LDNS_RR_TYPE_A, 1));

  auto edns = query("Mixed.CASE.Example.", LDNS_RR_TYPE_AAAA, 2);
  ASSERT_TRUE(edns);
  ldns_pkt_set_edns_udp_size(edns.get(), 1232);
  ldns_pkt_set_edns_do(edns.get(), true);
  packets.push_back(std::move(edns));

  auto small_edns = query("example.org.", LDNS_RR_TYPE_TXT, 3);
  ASSERT_TRUE(small_edns);
  ldns_pkt_set_edns_udp_size(small_edns.get(), 512);
  ldns_pkt_set_edns_version(small_edns.get(), 1);
  packets.push_back(std::move(small_edns));

  packets.push_back(query(".", LDNS_RR_TYPE_NS, 4));

  auto escaped = query("a\\.b.\\000x\\\\y.example.", LDNS_RR_TYPE_A, 5);
  ASSERT_TRUE(escaped);
  packets.push_back(std::move(escaped));

  auto response = query("example.net.", LDNS_RR_TYPE_MX, 6);
  ASSERT_TRUE(response);
  ldns_pkt_set_qr(response.get(), true);
  ldns_pkt_set_aa(response.get(), true);
  ASSERT_TRUE(push(response.get(), LDNS_SECTION_ANSWER, "example.net. IN MX 10 mail.example.net."));
  ASSERT_TRUE(push(response.get(), LDNS_SECTION_ANSWER, "example.net. IN MX 20 mx2.example.net."));
  ASSERT_TRUE(push(response.get(), LDNS_SECTION_ANSWER, "example.net. IN TXT \"v=spf1 -all\""));
  ASSERT_TRUE(push(response.get(), LDNS_SECTION_AUTHORITY,
                   "example.net. IN SOA ns.example.net. admin.example.net. 1 7200 3600 1209600 "
                   "300"));
  ASSERT_TRUE(push(response.get(), LDNS_SECTION_ADDITIONAL, "mail.example.net. IN A 192.0.2.25"));
  ASSERT_TRUE(
      push(response.get(), LDNS_SECTION_ADDITIONAL, "mail.example.net. IN AAAA 2001:db8::25"));
  ldns_pkt_set_edns_udp_size(response.get(), 4096);
  packets.push_back(std::move(response));

  auto nxdomain = query("nope.example.com.", LDNS_RR_TYPE_AAAA, 7);
  ASSERT_TRUE(nxdomain);
  ldns_pkt_set_qr(nxdomain.get(), true);
  ldns_pkt_set_rcode(nxdomain.get(), LDNS_RCODE_NXDOMAIN);
  ASSERT_TRUE(push(nxdomain.get(), LDNS_SECTION_AUTHORITY,
                   "example.com. IN SOA ns.example.com. hostmaster.example.com. 2 3600 600 "
                   "86400 60"));
  packets.push_back(std::move(nxdomain));

  auto srv = query("_https._tcp.registry.example.", LDNS_RR_TYPE_SRV, 8);
  ASSERT_TRUE(srv);
  ldns_pkt_set_qr(srv.get(), true);
  ASSERT_TRUE(push(srv.get(), LDNS_SECTION_ANSWER,
                   "_https._tcp.registry.example. IN SRV 0 5 443 registry.example."));
  packets.push_back(std::move(srv));

  for (std::size_t i = 0; i < packets.size(); ++i) {
    SCOPED_TRACE("packet " + std::to_string(i));
    ASSERT_TRUE(packets[i]);
    auto wire = wire_of(packets[i].get());
    expect_agreement(wire);
    // The EDNS packets really carry an OPT record, so its fields were compared above.
    EXPECT_EQ(check_message(wire).summary.has_opt, ldns_pkt_edns(packets[i].get()));
  }
}

}  // namespace
}  // namespace pullthrough::dns
