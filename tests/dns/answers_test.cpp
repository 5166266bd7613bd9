#include "dns/answers.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dns_test_support.hpp"

namespace pullthrough::dns {
namespace {

using testing::decode;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::make_query;
using testing::make_response;
using testing::query_for;
using testing::QuerySpec;
using testing::ResponseSpec;

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

// A query that passed check_message, owning its bytes.

const std::vector<core::IpAddress> kAddresses{ip("192.0.2.10"), ip("192.0.2.11"), ip("fd00::10")};

TEST(SynthesizeTest, AGetsTheIpv4Addresses) {
  auto q = query_for({.name = "quay.io.", .type = rrtype::kA});
  auto built = synthesize(q.query, kAddresses, 10, 0, 512);
  auto d = decode(built.wire);
  ASSERT_TRUE(d.ok);
  EXPECT_EQ(d.id, 0x1234);
  EXPECT_TRUE(d.qr);
  EXPECT_TRUE(d.aa);
  EXPECT_TRUE(d.rd);
  EXPECT_FALSE(d.ad);
  EXPECT_EQ(d.rcode, rcode::kNoError);
  EXPECT_THAT(d.answer, ElementsAre("quay.io. 10 IN A 192.0.2.10", "quay.io. 10 IN A 192.0.2.11"));
  EXPECT_TRUE(d.authority.empty());
}

TEST(SynthesizeTest, RotationChangesTheFirstAddress) {
  auto q = query_for({.name = "quay.io.", .type = rrtype::kA});
  auto d = decode(synthesize(q.query, kAddresses, 10, 1, 512).wire);
  EXPECT_THAT(d.answer, ElementsAre("quay.io. 10 IN A 192.0.2.11", "quay.io. 10 IN A 192.0.2.10"));
}

TEST(SynthesizeTest, AaaaGetsTheIpv6Addresses) {
  auto q = query_for({.name = "quay.io.", .type = rrtype::kAaaa});
  auto d = decode(synthesize(q.query, kAddresses, 10, 0, 512).wire);
  EXPECT_THAT(d.answer, ElementsAre("quay.io. 10 IN AAAA fd00::10"));
}

// REFERENCE "AAAA bypass": forwarding AAAA would hand out the registry's real IPv6 address.
TEST(SynthesizeTest, AaaaWithoutIpv6IsNodataNotForwarded) {
  auto q = query_for({.name = "quay.io.", .type = rrtype::kAaaa});
  auto d = decode(synthesize(q.query, {ip("192.0.2.10")}, 10, 0, 512).wire);
  EXPECT_EQ(d.rcode, rcode::kNoError);
  EXPECT_TRUE(d.answer.empty());
  ASSERT_EQ(d.authority.size(), 1U);
  EXPECT_THAT(d.authority[0],
              HasSubstr("quay.io. 10 IN SOA quay.io. hostmaster.quay.io. 1 10 10 10 10"));
}

// REFERENCE "HTTPS/SVCB": NODATA, never NXDOMAIN, never the real hints.
TEST(SynthesizeTest, HttpsRecordIsNodataWithSoa) {
  auto q = query_for({.name = "ghcr.io.", .type = rrtype::kHttps});
  auto d = decode(synthesize(q.query, kAddresses, 10, 0, 512).wire);
  EXPECT_EQ(d.rcode, rcode::kNoError);
  EXPECT_TRUE(d.answer.empty());
  ASSERT_EQ(d.authority.size(), 1U);
  EXPECT_THAT(d.authority[0], HasSubstr("IN SOA"));
}

TEST(SynthesizeTest, OtherTypesAreNodata) {
  for (std::uint16_t type : {15, 16, 33, 64, 2}) {  // MX TXT SRV SVCB NS
    auto q = query_for({.name = "quay.io.", .type = type});
    auto d = decode(synthesize(q.query, kAddresses, 10, 0, 512).wire);
    EXPECT_TRUE(d.answer.empty()) << type;
    EXPECT_EQ(d.authority.size(), 1U) << type;
    EXPECT_EQ(d.rcode, rcode::kNoError) << type;
  }
}

TEST(SynthesizeTest, AnyIsAMinimalAnswer) {
  auto q = query_for({.name = "quay.io.", .type = rrtype::kAny});
  auto d = decode(synthesize(q.query, kAddresses, 10, 0, 512).wire);
  EXPECT_THAT(d.answer, ElementsAre("quay.io. 10 IN A 192.0.2.10", "quay.io. 10 IN A 192.0.2.11"));
  auto none = decode(synthesize(q.query, {}, 10, 0, 512).wire);
  ASSERT_EQ(none.answer.size(), 1U);
  EXPECT_THAT(none.answer[0], HasSubstr("HINFO \"RFC8482\" \"\""));
}

TEST(SynthesizeTest, NeverSetsAdEvenWhenAsked) {
  auto q = query_for({.name = "quay.io.", .type = rrtype::kA, .ad = true});
  EXPECT_FALSE(decode(synthesize(q.query, kAddresses, 10, 0, 512).wire).ad);
}

// REFERENCE "0x20": the question comes back byte for byte.
TEST(SynthesizeTest, QuestionEchoedWithItsCase) {
  auto q = query_for({.name = "QuAy.iO.", .type = rrtype::kA});
  auto built = synthesize(q.query, kAddresses, 10, 0, 512);
  auto length = q.query.summary.question_end - 12;
  ASSERT_GE(built.wire.size(), 12 + length);
  EXPECT_TRUE(
      std::equal(built.wire.begin() + 12, built.wire.begin() + 12 + length, q.bytes.begin() + 12));
  EXPECT_THAT(decode(built.wire).question, ElementsAre("QuAy.iO. 1"));
}

TEST(SynthesizeTest, OptOnlyWhenTheQueryHadOne) {
  auto plain = query_for({.name = "quay.io.", .type = rrtype::kA});
  EXPECT_FALSE(decode(synthesize(plain.query, kAddresses, 10, 0, 512).wire).has_opt);
  auto edns = query_for({.name = "quay.io.", .type = rrtype::kA, .edns = true, .dnssec_ok = true});
  auto d = decode(synthesize(edns.query, kAddresses, 10, 0, 1232).wire);
  EXPECT_TRUE(d.has_opt);
  EXPECT_TRUE(d.dnssec_ok);
  EXPECT_EQ(d.udp_size, kMaxUdpPayload);
}

TEST(MaxAnswerSizeTest, FollowsEdnsAndTransport) {
  auto plain = query_for({.name = "a.example.", .type = rrtype::kA});
  EXPECT_EQ(max_answer_size(plain.query.summary, false), 512U);
  EXPECT_EQ(max_answer_size(plain.query.summary, true), 65535U);
  auto small = query_for({.name = "a.example.", .type = rrtype::kA, .edns = true, .udp_size = 100});
  EXPECT_EQ(max_answer_size(small.query.summary, false), 512U);
  auto big = query_for({.name = "a.example.", .type = rrtype::kA, .edns = true, .udp_size = 4096});
  EXPECT_EQ(max_answer_size(big.query.summary, false), kMaxUdpPayload);
}

std::vector<std::string> many_a_records(const std::string& owner, int count) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(owner + " 300 IN A 198.51.100." + std::to_string(i + 1));
  }
  return out;
}

ParsedUpstream upstream(const ResponseSpec& spec) {
  auto wire = make_response(spec);
  EXPECT_EQ(check_message(wire).error, WireError::none);
  auto parsed = parse_upstream(wire);
  EXPECT_TRUE(parsed);
  return parsed.value_or(ParsedUpstream{});
}

TEST(RelayTest, AnswerFollowsTheClient) {
  auto q = query_for({.name = "Example.COM.", .type = rrtype::kA, .id = 0x4242});
  auto up = upstream(
      {.qname = "example.com.", .id = 7, .answer = {"example.com. 300 IN A 198.51.100.1"}});
  auto built = relay(q.query, *up.answer, RelayOptions{}, 512);
  auto d = decode(built.wire);
  EXPECT_EQ(d.id, 0x4242);
  EXPECT_THAT(d.question, ElementsAre("Example.COM. 1"));
  // The owner is compressed against the question, so it carries the client's case too.
  EXPECT_THAT(d.answer, ElementsAre("Example.COM. 300 IN A 198.51.100.1"));
  EXPECT_FALSE(d.has_opt);
}

TEST(RelayTest, AgeIsSubtractedAndCapApplied) {
  auto q = query_for({.name = "example.com.", .type = rrtype::kA});
  auto up = upstream({.qname = "example.com.", .answer = {"example.com. 300 IN A 198.51.100.1"}});
  RelayOptions aged;
  aged.age_seconds = 100;
  EXPECT_THAT(decode(relay(q.query, *up.answer, aged, 512).wire).answer,
              ElementsAre("example.com. 200 IN A 198.51.100.1"));
  RelayOptions capped;
  capped.ttl_cap = 10;
  EXPECT_THAT(decode(relay(q.query, *up.answer, capped, 512).wire).answer,
              ElementsAre("example.com. 10 IN A 198.51.100.1"));
  RelayOptions expired;
  expired.age_seconds = 400;
  EXPECT_THAT(decode(relay(q.query, *up.answer, expired, 512).wire).answer,
              ElementsAre("example.com. 0 IN A 198.51.100.1"));
}

TEST(RelayTest, TooBigForUdpIsTruncatedAndWholeOverTcp) {
  auto q = query_for({.name = "big.example.", .type = rrtype::kA});
  auto up = upstream({.qname = "big.example.", .answer = many_a_records("big.example.", 40)});
  auto udp = relay(q.query, *up.answer, RelayOptions{}, max_answer_size(q.query.summary, false));
  EXPECT_TRUE(udp.truncated);
  EXPECT_LE(udp.wire.size(), 512U);
  auto d = decode(udp.wire);
  EXPECT_TRUE(d.tc);
  EXPECT_TRUE(d.answer.empty());
  EXPECT_THAT(d.question, ElementsAre("big.example. 1"));
  auto tcp = relay(q.query, *up.answer, RelayOptions{}, max_answer_size(q.query.summary, true));
  EXPECT_FALSE(tcp.truncated);
  EXPECT_EQ(decode(tcp.wire).answer.size(), 40U);
}

TEST(RelayTest, EdnsClientGetsUpToItsSize) {
  auto q = query_for({.name = "big.example.", .type = rrtype::kA, .edns = true, .udp_size = 1232});
  auto up = upstream({.qname = "big.example.", .answer = many_a_records("big.example.", 40)});
  auto built = relay(q.query, *up.answer, RelayOptions{}, max_answer_size(q.query.summary, false));
  EXPECT_FALSE(built.truncated);
  EXPECT_GT(built.wire.size(), 512U);
  EXPECT_LE(built.wire.size(), kMaxUdpPayload);
}

// REFERENCE "CNAME chains" (AdGuardHome#2102).
TEST(RelayTest, CnameIntoInterceptedNameIsRewritten) {
  auto q = query_for({.name = "mirror.example.", .type = rrtype::kA});
  auto up = upstream(
      {.qname = "mirror.example.",
       .answer = {"mirror.example. 300 IN CNAME alias.example.",
                  "alias.example. 300 IN CNAME quay.io.", "quay.io. 60 IN A 203.0.113.5"}});
  std::vector<core::IpAddress> to{ip("192.0.2.10")};
  RelayOptions options;
  options.intercepted = [](std::string_view name) { return name == "quay.io"; };
  options.rewrite_to = &to;
  options.answer_ttl = 10;
  auto built = relay(q.query, *up.answer, options, 512);
  EXPECT_TRUE(built.rewritten);
  EXPECT_THAT(decode(built.wire).answer,
              ElementsAre("mirror.example. 300 IN CNAME alias.example.",
                          "alias.example. 300 IN CNAME quay.io.", "quay.io. 10 IN A 192.0.2.10"));
}

TEST(RelayTest, CnameIntoInterceptedNameWithoutAddressFamilyIsNodata) {
  auto q = query_for({.name = "mirror.example.", .type = rrtype::kAaaa});
  auto up = upstream(
      {.qname = "mirror.example.",
       .qtype = rrtype::kAaaa,
       .answer = {"mirror.example. 300 IN CNAME quay.io.", "quay.io. 60 IN AAAA 2001:db8::5"}});
  std::vector<core::IpAddress> to{ip("192.0.2.10")};
  RelayOptions options;
  options.intercepted = [](std::string_view name) { return name == "quay.io"; };
  options.rewrite_to = &to;
  auto d = decode(relay(q.query, *up.answer, options, 512).wire);
  EXPECT_THAT(d.answer, ElementsAre("mirror.example. 300 IN CNAME quay.io."));
  ASSERT_EQ(d.authority.size(), 1U);
  EXPECT_THAT(d.authority[0], HasSubstr("quay.io. 10 IN SOA"));
}

TEST(RelayTest, NoRewriteWhileTheGateIsClosed) {
  auto q = query_for({.name = "mirror.example.", .type = rrtype::kA});
  auto up = upstream(
      {.qname = "mirror.example.",
       .answer = {"mirror.example. 300 IN CNAME quay.io.", "quay.io. 60 IN A 203.0.113.5"}});
  RelayOptions options;
  options.intercepted = [](std::string_view name) { return name == "quay.io"; };
  auto built = relay(q.query, *up.answer, options, 512);
  EXPECT_FALSE(built.rewritten);
  EXPECT_THAT(decode(built.wire).answer,
              ElementsAre("mirror.example. 300 IN CNAME quay.io.", "quay.io. 60 IN A 203.0.113.5"));
}

// Found by comparing the two codecs: the ldns path cleared the Z field after setting DO, so a
// DNSSEC-aware client lost its DO bit (RFC 3225 section 3: it is copied from the query).
TEST(RelayTest, DoBitIsCopiedFromTheQuery) {
  auto q = query_for({.name = "a.example.", .type = rrtype::kA, .edns = true, .dnssec_ok = true});
  auto up = upstream({.qname = "a.example.", .answer = {"a.example. 300 IN A 198.51.100.1"}});
  EXPECT_TRUE(decode(relay(q.query, *up.answer, RelayOptions{}, 1232).wire).dnssec_ok);
  EXPECT_TRUE(decode(reference::relay(q.query, *up.answer, RelayOptions{}, 1232).wire).dnssec_ok);
}

// Found by comparing the two codecs: the ldns path cloned the upstream's packet, and ldns keeps
// writing an OPT once it parsed one, so a client without EDNS got an OPT (RFC 6891 section 7).
TEST(RelayTest, NoOptForAClientWithoutEdnsWhenTheUpstreamUsedIt) {
  auto q = query_for({.name = "a.example.", .type = rrtype::kA});
  auto up = upstream(
      {.qname = "a.example.", .answer = {"a.example. 300 IN A 198.51.100.1"}, .edns = true});
  EXPECT_FALSE(decode(relay(q.query, *up.answer, RelayOptions{}, 512).wire).has_opt);
  EXPECT_FALSE(decode(reference::relay(q.query, *up.answer, RelayOptions{}, 512).wire).has_opt);
}

TEST(ParseUpstreamTest, PositiveTtlIsTheSmallest) {
  auto up = upstream(
      {.qname = "a.example.",
       .answer = {"a.example. 300 IN CNAME b.example.", "b.example. 60 IN A 198.51.100.1"}});
  EXPECT_EQ(up.cache_ttl, std::chrono::seconds(60));
}

TEST(ParseUpstreamTest, NegativeTtlIsSoaMinimumBounded) {
  auto nx =
      upstream({.qname = "none.example.",
                .rcode = rcode::kNxDomain,
                .authority = {"example. 3600 IN SOA ns.example. h.example. 1 7200 900 86400 120"}});
  EXPECT_EQ(nx.cache_ttl, std::chrono::seconds(120));
  auto nodata =
      upstream({.qname = "a.example.",
                .qtype = rrtype::kAaaa,
                .authority = {"example. 30 IN SOA ns.example. h.example. 1 7200 900 86400 120"}});
  EXPECT_EQ(nodata.cache_ttl, std::chrono::seconds(30));
}

TEST(ParseUpstreamTest, UncacheableAnswers) {
  EXPECT_FALSE(upstream({.qname = "a.example.", .rcode = rcode::kServFail}).cache_ttl);
  EXPECT_FALSE(upstream({.qname = "a.example.", .rcode = rcode::kNxDomain}).cache_ttl);  // no SOA
  EXPECT_FALSE(
      upstream({.qname = "a.example.", .tc = true, .answer = {"a.example. 60 IN A 1.2.3.4"}})
          .cache_ttl);
  EXPECT_FALSE(
      upstream({.qname = "a.example.", .answer = {"a.example. 0 IN A 1.2.3.4"}}).cache_ttl);
}

TEST(ErrorAnswerTest, CarriesRcodeQuestionAndEdns) {
  auto q = query_for({.name = "x.example.", .type = rrtype::kA, .edns = true});
  auto d = decode(error_answer(q.query, rcode::kRefused, 512).wire);
  EXPECT_EQ(d.rcode, rcode::kRefused);
  EXPECT_THAT(d.question, ElementsAre("x.example. 1"));
  EXPECT_TRUE(d.has_opt);
  EXPECT_TRUE(d.answer.empty());
}

}  // namespace
}  // namespace pullthrough::dns

namespace pullthrough::dns {
namespace {

// Found by dns_responder_fuzz: a question whose name points back into itself is legal, but its
// bytes cannot be copied over ldns's uncompressed encoding of the same name.
TEST(SynthesizeTest, SelfCompressedQuestionStillGivesAWellFormedAnswer) {
  const std::vector<std::uint8_t> query{
      0x77, 0x21, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // header
      // A label holding "\001x\000", then a pointer into it that reads "x" and the root.
      0x03, 0x01, 'x', 0x00, 0xC0, 0x0D, 0x00, 0x01, 0x00, 0x01};
  // Keep the test honest: the name must really be compressed and accepted.
  auto checked = check_message(query);
  ASSERT_EQ(checked.error, WireError::none) << to_string(checked.error);
  Query q{query, checked.summary};
  auto built = synthesize(q, {*core::parse_ip("192.0.2.10")}, 10, 0, 512);
  auto answer = check_message(built.wire);
  EXPECT_EQ(answer.error, WireError::none) << to_string(answer.error);
  EXPECT_EQ(answer.summary.qname, checked.summary.qname);
}

}  // namespace
}  // namespace pullthrough::dns
