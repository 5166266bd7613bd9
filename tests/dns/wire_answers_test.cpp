#include "dns/wire_answers.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dns/wire.hpp"
#include "dns_test_support.hpp"

namespace pullthrough::dns {
namespace {

using testing::decode;
using testing::describe;
using testing::make_query;
using testing::make_response;
using testing::query_for;
using testing::QuerySpec;
using testing::ResponseSpec;

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

// The hand-written answer must mean exactly what the ldns one means: same header bits, same
// question with the client's case, same records in the same order with the same TTLs, same OPT.
void expect_same(const Built& fast, const Built& reference, const std::string& what) {
  auto f = decode(fast.wire);
  auto r = decode(reference.wire);
  ASSERT_TRUE(f.ok) << what;
  EXPECT_EQ(f, r) << what << "\nfast:\n" << describe(f) << "ldns:\n" << describe(r);
  EXPECT_EQ(fast.truncated, reference.truncated) << what;
  EXPECT_EQ(fast.rewritten, reference.rewritten) << what;
  // Both are well formed for our own checker too, and never longer than ldns's encoding.
  EXPECT_EQ(check_message(fast.wire).error, WireError::none) << what;
  EXPECT_LE(fast.wire.size(), reference.wire.size()) << what;
}

std::vector<QuerySpec> query_matrix(const std::vector<std::string>& names,
                                    const std::vector<std::uint16_t>& types) {
  std::vector<QuerySpec> out;
  for (const auto& name : names) {
    for (auto type : types) {
      for (int shape = 0; shape < 5; ++shape) {
        QuerySpec spec{.name = name, .type = type, .id = static_cast<std::uint16_t>(0x100 + shape)};
        spec.edns = shape >= 1;
        spec.udp_size = shape == 2 ? 512 : shape == 3 ? 4096 : 1232;
        spec.dnssec_ok = shape == 3;
        spec.cd = shape == 4;
        spec.ad = shape == 4;
        out.push_back(spec);
      }
    }
  }
  return out;
}

std::string label(const QuerySpec& spec) {
  return spec.name + " type " + std::to_string(spec.type) + " id " + std::to_string(spec.id);
}

std::vector<core::IpAddress> many_v4(int n) {
  std::vector<core::IpAddress> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(ip(("192.0.2." + std::to_string(i + 1)).c_str()));
  }
  return out;
}

TEST(WireAnswersTest, SynthesizeMatchesLdnsForEveryShape) {
  const std::vector<std::vector<core::IpAddress>> address_sets{
      {},
      {ip("192.0.2.10")},
      {ip("192.0.2.10"), ip("192.0.2.11")},
      {ip("fd00::10")},
      {ip("192.0.2.10"), ip("fd00::10"), ip("fd00::11")},
      many_v4(40),  // does not fit 512 bytes
  };
  int compared = 0;
  for (const auto& spec :
       query_matrix({"quay.io.", "QuAy.Io.", "registry-1.docker.io.",
                     std::string(63, 'a') + "." + std::string(63, 'B') + ".example."},
                    {rrtype::kA, rrtype::kAaaa, rrtype::kHttps, 15, 16, rrtype::kAny})) {
    auto q = query_for(spec);
    ASSERT_TRUE(wire_answers::eligible(q.query));
    for (const auto& addresses : address_sets) {
      for (std::size_t rotation : {0, 1, 5}) {
        for (bool tcp : {false, true}) {
          auto max = max_answer_size(q.query.summary, tcp);
          Built fast;
          ASSERT_TRUE(wire_answers::synthesize(q.query, addresses, 10, rotation, max, fast));
          expect_same(fast, reference::synthesize(q.query, addresses, 10, rotation, max),
                      label(spec) + " addresses " + std::to_string(addresses.size()) +
                          " rotation " + std::to_string(rotation) + " max " + std::to_string(max));
          ++compared;
        }
      }
    }
  }
  EXPECT_EQ(compared, 4 * 6 * 5 * 6 * 3 * 2);
}

TEST(WireAnswersTest, SynthesizedAnswerIsByteIdenticalToLdns) {
  // Where ldns compresses as we do, the bytes are the same, not just the meaning.
  for (auto type : {rrtype::kA, rrtype::kAaaa, rrtype::kHttps}) {
    auto q = query_for({.name = "Ghcr.IO.", .type = type, .edns = true});
    std::vector<core::IpAddress> addresses{ip("192.0.2.10"), ip("fd00::10")};
    Built fast;
    ASSERT_TRUE(wire_answers::synthesize(q.query, addresses, 10, 0, 1232, fast));
    EXPECT_EQ(fast.wire, reference::synthesize(q.query, addresses, 10, 0, 1232).wire) << type;
  }
}

TEST(WireAnswersTest, ErrorAnswersMatchLdns) {
  for (const auto& spec : query_matrix({"x.example.", "X.Example."}, {rrtype::kA, 16})) {
    auto q = query_for(spec);
    for (auto rc :
         {rcode::kNoError, rcode::kFormErr, rcode::kServFail, rcode::kNotImp, rcode::kRefused}) {
      Built fast;
      ASSERT_TRUE(wire_answers::error_answer(q.query, rc, 512, fast));
      expect_same(fast, reference::error_answer(q.query, rc, 512),
                  label(spec) + " rcode " + std::to_string(rc));
    }
  }
}

std::vector<std::string> many_a_records(const std::string& owner, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(owner + " 300 IN A 198.51.100." + std::to_string(i + 1));
  }
  return out;
}

TEST(WireAnswersTest, RelayMatchesLdnsForEveryShape) {
  const std::string soa = "example. 3600 IN SOA ns.example. h.example. 1 7200 900 86400 120";
  const std::vector<ResponseSpec> upstreams{
      {.qname = "a.example.", .answer = {"a.example. 300 IN A 198.51.100.1"}},
      {.qname = "a.example.",
       .answer = {"a.example. 300 IN CNAME b.example.", "b.example. 60 IN A 198.51.100.2"},
       .authority = {"example. 3600 IN NS ns.example."},
       .additional = {"ns.example. 3600 IN A 198.51.100.53"},
       .edns = true,
       .ad = true},
      {.qname = "a.example.", .rcode = rcode::kNxDomain, .authority = {soa}},
      {.qname = "a.example.", .authority = {soa}, .edns = true},
      {.qname = "a.example.", .answer = many_a_records("a.example.", 40), .edns = true},
      {.qname = "a.example.",
       .answer = {"a.example. 300 IN CNAME quay.io.", "quay.io. 60 IN A 203.0.113.5"}},
  };
  std::vector<RelayOptions> options(4);
  options[1].age_seconds = 100;
  options[2].age_seconds = 400;
  options[3].ttl_cap = 10;
  // The gate is closed in all of these (no rewrite_to): a CNAME into quay.io is relayed as is.
  for (auto& o : options) o.intercepted = [](std::string_view name) { return name == "quay.io"; };
  int compared = 0;
  for (const auto& up : upstreams) {
    auto upstream_wire = make_response(up);
    auto parsed = parse_upstream(upstream_wire);
    ASSERT_TRUE(parsed);
    auto replay = wire_answers::prepare(upstream_wire);
    ASSERT_TRUE(replay);
    for (const auto& spec : query_matrix({"a.example.", "A.eXample."}, {rrtype::kA})) {
      auto q = query_for(spec);
      for (std::size_t o = 0; o < options.size(); ++o) {
        for (bool tcp : {false, true}) {
          auto max = max_answer_size(q.query.summary, tcp);
          Built fast;
          ASSERT_TRUE(wire_answers::relay(q.query, *replay, options[o], max, fast));
          expect_same(fast, reference::relay(q.query, *parsed->answer, options[o], max),
                      label(spec) + " upstream " + std::to_string(up.answer.size()) +
                          " answers, options " + std::to_string(o) + " max " + std::to_string(max));
          ++compared;
        }
      }
    }
  }
  EXPECT_EQ(compared, 6 * 10 * 4 * 2);
}

TEST(WireAnswersTest, RelayDeclinesWhatItCannotAnswer) {
  auto upstream_wire = make_response(
      {.qname = "a.example.",
       .answer = {"a.example. 300 IN CNAME quay.io.", "quay.io. 60 IN A 203.0.113.5"}});
  auto replay = wire_answers::prepare(upstream_wire);
  ASSERT_TRUE(replay);
  EXPECT_EQ(replay->cname_chain, std::vector<std::string>{"quay.io"});
  auto q = query_for({.name = "a.example.", .type = rrtype::kA});
  Built out;
  // The gate is open and the chain leads into an intercepted name: only ldns rewrites.
  std::vector<core::IpAddress> to{ip("192.0.2.10")};
  RelayOptions rewrite;
  rewrite.intercepted = [](std::string_view name) { return name == "quay.io"; };
  rewrite.rewrite_to = &to;
  EXPECT_FALSE(wire_answers::relay(q.query, *replay, rewrite, 512, out));
  // A different question than the template answers.
  auto other = query_for({.name = "b.example.", .type = rrtype::kA});
  EXPECT_FALSE(wire_answers::relay(other.query, *replay, RelayOptions{}, 512, out));
  auto other_type = query_for({.name = "a.example.", .type = rrtype::kAaaa});
  EXPECT_FALSE(wire_answers::relay(other_type.query, *replay, RelayOptions{}, 512, out));
}

TEST(WireAnswersTest, PrepareDeclinesAnOptThatIsNotLast) {
  // Taking this OPT out would move the A record after it; ldns handles such a message.
  const std::vector<std::uint8_t> message{
      0x00, 0x01, 0x81, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,  // header
      0x01, 'a',  0x00, 0x00, 0x01, 0x00, 0x01,                                // a. A IN
      0x00, 0x00, 0x29, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,        // OPT
      0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x04,  // a. 60 A
      0xC6, 0x33, 0x64, 0x01};
  ASSERT_EQ(check_message(message).error, WireError::none);
  EXPECT_FALSE(wire_answers::prepare(message));
  // Through the public entry points it is still relayed, by ldns.
  auto parsed = parse_upstream(message);
  ASSERT_TRUE(parsed);
  auto q = query_for({.name = "a.", .type = rrtype::kA});
  auto d = decode(relay(q.query, *parsed->answer, RelayOptions{}, 512).wire);
  EXPECT_THAT(d.additional, ::testing::ElementsAre("a. 60 IN A 198.51.100.1"));
}

// Found by dns_codec_fuzz: replay rewrites TTLs in place, so a name compressed into a TTL field
// would change its meaning with the age of the answer.
TEST(WireAnswersTest, PrepareDeclinesANameCompressedIntoATtl) {
  const std::vector<std::uint8_t> message{
      0x00, 0x01, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,  // header
      0x01, 'a',  0x00, 0x00, 0x01, 0x00, 0x01,                                // a. A IN
      0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x04,  // TTL at 25
      0xC6, 0x33, 0x64, 0x01, 0xC0, 0x19, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
      0x00, 0x3C, 0x00, 0x04,  // owner: -> 25
      0xC6, 0x33, 0x64, 0x02};
  ASSERT_EQ(check_message(message).error, WireError::none);
  EXPECT_FALSE(wire_answers::prepare(message));
}

// Found by dns_codec_fuzz: replay drops the upstream's OPT, so a name compressed into it would
// point past the end of the relayed message.
TEST(WireAnswersTest, PrepareDeclinesANameCompressedIntoTheOpt) {
  const std::vector<std::uint8_t> message{
      0x00, 0x01, 0x81, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01,  // header
      0x01, 'a',  0x00, 0x00, 0x01, 0x00, 0x01,                                // a. A IN
      0xC0, 0x0C, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x02,  // a. 60 NS
      0xC0, 0x21,                                                              // -> 33
      0x00, 0x00, 0x29, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};       // OPT at 33
  ASSERT_EQ(check_message(message).error, WireError::none);
  EXPECT_FALSE(wire_answers::prepare(message));
  // The ldns path decompresses the name and still relays the answer.
  auto parsed = parse_upstream(message);
  ASSERT_TRUE(parsed);
  auto q = query_for({.name = "a.", .type = rrtype::kA});
  auto d = decode(relay(q.query, *parsed->answer, RelayOptions{}, 512).wire);
  ASSERT_TRUE(d.ok);
  EXPECT_THAT(d.authority, ::testing::ElementsAre("a. 60 IN NS ."));
}

// Found by dns_codec_fuzz: the header is the client's in the relayed answer, so a name in rdata
// compressed into it (here NS "n." then a pointer to offset 1, upstream's ID byte 0x00) would read
// the client's ID and flags instead.
TEST(WireAnswersTest, PrepareDeclinesANameCompressedIntoTheHeader) {
  const std::vector<std::uint8_t> message{
      0x00, 0x00, 0x81, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,  // header
      0x01, 'a',  0x00, 0x00, 0x01, 0x00, 0x01,                                // a. A IN
      0xC0, 0x0C, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x04,  // a. 60 NS
      0x01, 'n',  0xC0, 0x01};                                                 // n + -> 1
  ASSERT_EQ(check_message(message).error, WireError::none);
  EXPECT_FALSE(wire_answers::prepare(message));
}

// Found by dns_codec_fuzz: a CNAME with an empty rdata, then one into an intercepted name. The
// fast path took the name after the empty rdata as the first CNAME's target and missed the chain
// into quay.io, so it relayed what the ldns path rewrites.
TEST(WireAnswersTest, PrepareDeclinesACnameWhoseRdataIsNotOneName) {
  const std::vector<std::uint8_t> message{
      0x00, 0x01, 0x81, 0x80, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,  // header
      0x01, 'a',  0x00, 0x00, 0x01, 0x00, 0x01,                                // a. A IN
      0xC0, 0x0C, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x00,  // a. CNAME, empty
      0xC0, 0x0C, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x09,  // a. CNAME
      0x04, 'q',  'u',  'a',  'y',  0x02, 'i',  'o',  0x00,                    //   quay.io.
      0xC0, 0x2B, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x04,  // quay.io. A
      0xCB, 0x00, 0x71, 0x05};
  ASSERT_EQ(check_message(message).error, WireError::none);
  EXPECT_FALSE(wire_answers::prepare(message));
  // The ldns path follows the well-formed CNAME into quay.io and rewrites.
  auto parsed = parse_upstream(message);
  ASSERT_TRUE(parsed);
  auto q = query_for({.name = "a.", .type = rrtype::kA});
  std::vector<core::IpAddress> to{ip("192.0.2.10")};
  RelayOptions rewrite;
  rewrite.intercepted = [](std::string_view name) { return name == "quay.io"; };
  rewrite.rewrite_to = &to;
  auto d = decode(relay(q.query, *parsed->answer, rewrite, 512).wire);
  ASSERT_TRUE(d.ok);
  EXPECT_THAT(d.answer, ::testing::ElementsAre("a. 60 IN CNAME quay.io.",
                                               ::testing::StartsWith("quay.io. ")));
  EXPECT_THAT(d.answer.back(), ::testing::EndsWith("192.0.2.10"));
}

// Found by dns_codec_fuzz: for a name near 255 octets, hostmaster.<name> is no name at all.
TEST(WireAnswersTest, NodataForAVeryLongNameStaysWellFormed) {
  std::string name;
  for (int i = 0; i < 4; ++i) name += std::string(60, static_cast<char>('a' + i)) + ".";
  auto q = query_for({.name = name, .type = rrtype::kHttps});  // 245 octets on the wire
  Built fast;
  ASSERT_TRUE(wire_answers::synthesize(q.query, {ip("192.0.2.10")}, 10, 0, 512, fast));
  EXPECT_EQ(check_message(fast.wire).error, WireError::none);
  auto d = decode(fast.wire);
  ASSERT_TRUE(d.ok);
  ASSERT_EQ(d.authority.size(), 1U);
  EXPECT_EQ(d, decode(reference::synthesize(q.query, {ip("192.0.2.10")}, 10, 0, 512).wire));
}

// Found by dns_codec_fuzz: a TSIG record signs the upstream's hop, not ours; only the ldns path,
// which takes it out, may relay such an answer.
TEST(WireAnswersTest, PrepareDeclinesTsig) {
  const std::vector<std::uint8_t> message{
      0x00, 0x01, 0x81, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,  // header
      0x01, 'a',  0x00, 0x00, 0x01, 0x00, 0x01,                                // a. A IN
      0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3C, 0x00, 0x04,  // a. 60 A
      0xC6, 0x33, 0x64, 0x01, 0x00, 0x00, 0xFA, 0x00, 0xFF, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00};  // . TSIG ANY
  ASSERT_EQ(check_message(message).error, WireError::none);
  EXPECT_FALSE(wire_answers::prepare(message));
}

TEST(WireAnswersTest, CompressedOrMissingQuestionIsNotEligible) {
  const std::vector<std::uint8_t> self_compressed{0x77, 0x21, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00,
                                                  0x00, 0x00, 0x00, 0x00, 0x03, 0x01, 'x',  0x00,
                                                  0xC0, 0x0D, 0x00, 0x01, 0x00, 0x01};
  auto checked = check_message(self_compressed);
  ASSERT_EQ(checked.error, WireError::none);
  EXPECT_FALSE(wire_answers::eligible(Query{self_compressed, checked.summary}));
  Built out;
  EXPECT_FALSE(wire_answers::synthesize(Query{self_compressed, checked.summary}, {ip("192.0.2.10")},
                                        10, 0, 512, out));
  const std::vector<std::uint8_t> no_question{0x00, 0x01, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0};
  auto empty = check_message(no_question);
  ASSERT_EQ(empty.error, WireError::none);
  EXPECT_FALSE(wire_answers::eligible(Query{no_question, empty.summary}));
}

}  // namespace
}  // namespace pullthrough::dns
