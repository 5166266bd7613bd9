#include "dns/address_resolver.hpp"

#include "core/asio.hpp"
#include <utility>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "core/net.hpp"
#include "dns/wire.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/dns/dns_test_support.hpp"

namespace pullthrough::dns {
namespace {

using core::ResolveResult;
using core::testing::FakeClock;
using std::chrono::seconds;
using testing::make_response;
using testing::ResponseSpec;

constexpr std::uint16_t kA = 1;
constexpr std::uint16_t kAaaa = 28;

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

// Answers each query from a table keyed by name and type, always later on the io_context as the
// Forwarder does, so that queries sent together are in flight together.
class TableUpstream final : public Upstream {
 public:
  using Handler = std::function<ForwardResult(const WireSummary& query)>;

  explicit TableUpstream(asio::io_context& io) : io_(io) {}

  void set(const std::string& name, std::uint16_t type, Handler handler) {
    std::lock_guard lock(mutex_);
    table_[{name, type}] = std::move(handler);
  }

  void forward(std::span<const std::uint8_t> query,
               std::function<void(ForwardResult)> done) override {
    ForwardResult result;
    result.error = "not in the table";
    {
      std::lock_guard lock(mutex_);
      queries_.emplace_back(query.begin(), query.end());
      auto check = check_message(query);
      auto found = table_.find({check.summary.qname, check.summary.qtype});
      if (check.error == WireError::none && found != table_.end()) {
        result = found->second(check.summary);
      }
    }
    asio::post(io_, [done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }

  void shutdown() override {}

  std::size_t query_count() const {
    std::lock_guard lock(mutex_);
    return queries_.size();
  }

  std::vector<std::vector<std::uint8_t>> queries() const {
    std::lock_guard lock(mutex_);
    return queries_;
  }

 private:
  asio::io_context& io_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::uint16_t>, Handler> table_;
  std::vector<std::vector<std::uint8_t>> queries_;
};

// A response to the query with these answer records (zone-file lines) and rcode; `id` replaces
// the query's ID when set.
TableUpstream::Handler answer(std::vector<std::string> records, std::uint8_t rcode = 0,
                              std::optional<std::uint16_t> id = std::nullopt) {
  return [records = std::move(records), rcode, id](const WireSummary& query) {
    ResponseSpec spec;
    spec.qname = query.qname + ".";
    spec.qtype = query.qtype;
    spec.id = id.value_or(query.id);
    spec.rcode = rcode;
    spec.answer = records;
    ForwardResult result;
    result.status = ForwardResult::Status::answer;
    result.answer = make_response(spec);
    return result;
  };
}

TableUpstream::Handler raw(std::vector<std::uint8_t> bytes) {
  return [bytes = std::move(bytes)](const WireSummary&) {
    ForwardResult result;
    result.status = ForwardResult::Status::answer;
    result.answer = bytes;
    return result;
  };
}

TableUpstream::Handler timeout() {
  return [](const WireSummary&) {
    ForwardResult result;
    result.status = ForwardResult::Status::timeout;
    result.error = "every upstream timed out";
    return result;
  };
}

// What an upstream answering `name`/`type` with `records` sends, ID included.
std::vector<std::uint8_t> response_bytes(const std::string& name, std::uint16_t type,
                                         std::vector<std::string> records) {
  ResponseSpec spec;
  spec.qname = name + ".";
  spec.qtype = type;
  spec.answer = std::move(records);
  return make_response(spec);
}

struct TestBed {
  explicit TestBed(AddressResolverLimits limits = {}) : resolver(io, upstream, clock, limits) {}

  // Resolves `host` and runs the io_context until nothing is left to do.
  ResolveResult resolve(const std::string& host) {
    std::optional<ResolveResult> out;
    int calls = 0;
    resolver.resolve(host, [&](ResolveResult result) {
      ++calls;
      EXPECT_TRUE(io.get_executor().running_in_this_thread());
      out = std::move(result);
    });
    run();
    EXPECT_EQ(calls, 1) << host;
    return out.value_or(ResolveResult{{}, "done was not called"});
  }

  void run() {
    io.restart();
    io.run();
  }

  // A and AAAA for `name`, with the given records (none: NODATA).
  void serve(const std::string& name, std::vector<std::string> a, std::vector<std::string> aaaa) {
    upstream.set(name, kA, answer(std::move(a)));
    upstream.set(name, kAaaa, answer(std::move(aaaa)));
  }

  asio::io_context io;
  FakeClock clock;
  TableUpstream upstream{io};
  AddressResolver resolver;
};

TEST(AddressResolverTest, SendsAandAaaaQueriesTogether) {
  TestBed bed;
  bed.serve("quay.io", {"quay.io. 60 IN A 192.0.2.1"}, {});
  bed.resolver.resolve("quay.io", [](const ResolveResult&) {});
  // Both sent before either is answered.
  auto queries = bed.upstream.queries();
  ASSERT_EQ(queries.size(), 2U);
  std::vector<std::uint16_t> types;
  for (const auto& query : queries) {
    auto check = check_message(query);
    ASSERT_EQ(check.error, WireError::none);
    EXPECT_EQ(check.summary.qname, "quay.io");
    EXPECT_EQ(check.summary.qdcount, 1);
    EXPECT_EQ(check.summary.qclass, 1);
    EXPECT_EQ(check.summary.flags, 0x0100) << "RD only";
    EXPECT_EQ(check.summary.ancount + check.summary.nscount + check.summary.arcount, 0);
    EXPECT_FALSE(check.summary.has_opt);
    types.push_back(check.summary.qtype);
  }
  EXPECT_EQ(types, (std::vector<std::uint16_t>{kA, kAaaa}));
  bed.run();
}

TEST(AddressResolverTest, MergesIpv4FirstThenIpv6WithoutDuplicates) {
  TestBed bed;
  bed.serve(
      "quay.io",
      {"quay.io. 60 IN A 192.0.2.2", "quay.io. 60 IN A 192.0.2.1", "quay.io. 60 IN A 192.0.2.2"},
      {"quay.io. 60 IN AAAA 2001:db8::1", "quay.io. 60 IN AAAA 2001:db8::1"});
  auto result = bed.resolve("quay.io");
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.addresses,
            (std::vector<core::IpAddress>{ip("192.0.2.2"), ip("192.0.2.1"), ip("2001:db8::1")}));
  EXPECT_EQ(bed.resolver.counters().lookups.value(), 1U);
  EXPECT_EQ(bed.resolver.counters().failures.value(), 0U);
}

TEST(AddressResolverTest, FollowsCnameChainToAddresses) {
  TestBed bed;
  bed.serve("registry.example",
            {"registry.example. 300 IN CNAME cdn.example.net.",
             "unrelated.example. 300 IN A 198.51.100.99",
             "cdn.example.net. 300 IN CNAME edge.example.org.",
             "edge.example.org. 60 IN A 192.0.2.10", "cdn.example.com. 300 IN A 198.51.100.98"},
            {"registry.example. 300 IN CNAME edge6.example.org.",
             "edge6.example.org. 60 IN AAAA 2001:db8::10"});
  auto result = bed.resolve("registry.example");
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.addresses, (std::vector<core::IpAddress>{ip("192.0.2.10"), ip("2001:db8::10")}));
}

TEST(AddressResolverTest, IgnoresAddressesOfUnrelatedNames) {
  TestBed bed;
  bed.serve("quay.io", {"evil.example. 300 IN A 203.0.113.66"}, {});
  auto result = bed.resolve("quay.io");
  EXPECT_TRUE(result.addresses.empty());
  EXPECT_EQ(result.error, "quay.io: no A or AAAA records");
}

TEST(AddressResolverTest, CnameLoopIsAFailure) {
  TestBed bed;
  bed.serve("a.example", {"a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example."},
            {});
  auto result = bed.resolve("a.example");
  EXPECT_TRUE(result.addresses.empty());
  EXPECT_EQ(result.error, "a.example: CNAME chain longer than 8 hops");
}

TEST(AddressResolverTest, FollowsCnameChainOfEightHops) {
  TestBed bed;
  std::vector<std::string> records;
  records.reserve(9);
  for (int i = 0; i < 8; ++i) {
    records.push_back("h" + std::to_string(i) + ".example. 60 IN CNAME h" + std::to_string(i + 1) +
                      ".example.");
  }
  auto too_long = records;
  records.emplace_back("h8.example. 60 IN A 192.0.2.8");
  bed.serve("h0.example", records, {});
  EXPECT_EQ(bed.resolve("h0.example").addresses, std::vector<core::IpAddress>{ip("192.0.2.8")});

  too_long.emplace_back("h8.example. 60 IN CNAME h9.example.");
  too_long.emplace_back("h9.example. 60 IN A 192.0.2.9");
  TestBed nine;
  nine.serve("h0.example", too_long, {});
  EXPECT_EQ(nine.resolve("h0.example").error, "h0.example: CNAME chain longer than 8 hops");
}

TEST(AddressResolverTest, NxdomainIsAFailure) {
  TestBed bed;
  bed.upstream.set("nope.example", kA, answer({}, 3));
  bed.upstream.set("nope.example", kAaaa, answer({}, 3));
  auto result = bed.resolve("nope.example");
  EXPECT_TRUE(result.addresses.empty());
  EXPECT_EQ(result.error, "nope.example: NXDOMAIN");
  EXPECT_EQ(bed.resolver.counters().failures.value(), 1U);
}

TEST(AddressResolverTest, NodataIsAFailure) {
  TestBed bed;
  bed.serve("quay.io", {}, {});
  auto result = bed.resolve("quay.io");
  EXPECT_TRUE(result.addresses.empty());
  EXPECT_EQ(result.error, "quay.io: no A or AAAA records");
}

TEST(AddressResolverTest, ServfailIsAFailure) {
  TestBed bed;
  bed.upstream.set("quay.io", kA, answer({}, 2));
  bed.upstream.set("quay.io", kAaaa, answer({}, 2));
  EXPECT_EQ(bed.resolve("quay.io").error, "quay.io: SERVFAIL");
}

TEST(AddressResolverTest, TimeoutIsAFailure) {
  TestBed bed;
  bed.upstream.set("quay.io", kA, timeout());
  bed.upstream.set("quay.io", kAaaa, timeout());
  auto result = bed.resolve("quay.io");
  EXPECT_TRUE(result.addresses.empty());
  EXPECT_EQ(result.error, "quay.io: timed out");
}

TEST(AddressResolverTest, NamesBothFailuresWhenTheyDiffer) {
  TestBed bed;
  bed.upstream.set("quay.io", kA, timeout());
  bed.upstream.set("quay.io", kAaaa, answer({}, 5));
  EXPECT_EQ(bed.resolve("quay.io").error, "quay.io: A: timed out; AAAA: REFUSED");
}

TEST(AddressResolverTest, OneFamilyFailingStillGivesTheOther) {
  TestBed bed;
  bed.upstream.set("quay.io", kA, timeout());
  bed.upstream.set("quay.io", kAaaa, answer({"quay.io. 60 IN AAAA 2001:db8::7"}));
  auto result = bed.resolve("quay.io");
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.addresses, std::vector<core::IpAddress>{ip("2001:db8::7")});
}

TEST(AddressResolverTest, FailsAtOnceWithNoUpstream) {
  // NoUpstream calls back from inside forward(): no lock may be held then.
  asio::io_context io;
  FakeClock clock;
  NoUpstream upstream;
  AddressResolver resolver(io, upstream, clock);
  std::optional<ResolveResult> out;
  resolver.resolve("quay.io", [&](ResolveResult result) { out = std::move(result); });
  io.run();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error, "quay.io: upstream error: no upstream resolver configured");
}

// The Forwarder's c-ares sends our query under an ID of its own and hands back the answer under
// that ID (ForwarderTest.RelaysAnswerUnderTheIdCaresChose): the ID is the transport's to check,
// and an answer to the right question is accepted whatever its ID.
TEST(AddressResolverTest, MismatchedIdIsIgnoredAsTheTransportsBusiness) {
  TestBed bed;
  bed.upstream.set("quay.io", kA, answer({"quay.io. 60 IN A 192.0.2.1"}, 0, 0xbeef));
  bed.upstream.set("quay.io", kAaaa, answer({}, 0, 0xbeef));
  EXPECT_EQ(bed.resolve("quay.io").addresses, std::vector<core::IpAddress>{ip("192.0.2.1")});
}

TEST(AddressResolverTest, AnswerToAnotherQuestionIsAFailure) {
  TestBed bed;
  bed.upstream.set("quay.io", kA,
                   raw(response_bytes("evil.example", kA, {"evil.example. 60 IN A 203.0.113.1"})));
  bed.upstream.set("quay.io", kAaaa,
                   raw(response_bytes("quay.io", kA, {"quay.io. 60 IN A 203.0.113.2"})));
  auto result = bed.resolve("quay.io");
  EXPECT_TRUE(result.addresses.empty());
  EXPECT_EQ(result.error, "quay.io: answer does not match the question");
}

TEST(AddressResolverTest, QueryEchoedBackIsAFailure) {
  TestBed bed;
  auto echo = [](const WireSummary& query) {
    ForwardResult result;
    result.status = ForwardResult::Status::answer;
    result.answer = testing::make_query({.name = query.qname + ".", .type = query.qtype});
    return result;
  };
  bed.upstream.set("quay.io", kA, echo);
  bed.upstream.set("quay.io", kAaaa, echo);
  EXPECT_EQ(bed.resolve("quay.io").error, "quay.io: answer does not match the question");
}

TEST(AddressResolverTest, TruncatedAnswerBytesAreAFailure) {
  TestBed bed;
  auto bytes = response_bytes("quay.io", kA, {"quay.io. 60 IN A 192.0.2.1"});
  bytes.resize(bytes.size() - 3);
  bed.upstream.set("quay.io", kA, raw(bytes));
  bed.upstream.set("quay.io", kAaaa, raw({0x12, 0x34, 0x81}));
  auto result = bed.resolve("quay.io");
  EXPECT_TRUE(result.addresses.empty());
  EXPECT_EQ(result.error,
            "quay.io: A: malformed answer (truncated); AAAA: malformed answer (short_header)");
}

TEST(AddressResolverTest, AddressRecordOfWrongLengthIsAFailure) {
  TestBed bed;
  // The last record is the A record: RDLENGTH then 4 address bytes. Make it a 3-byte address.
  auto bytes = response_bytes("quay.io", kA, {"quay.io. 60 IN A 192.0.2.1"});
  bytes.pop_back();
  bytes[bytes.size() - 4] = 3;
  ASSERT_EQ(check_message(bytes).error, WireError::none);
  bed.upstream.set("quay.io", kA, raw(bytes));
  bed.upstream.set("quay.io", kAaaa, answer({}));
  auto result = bed.resolve("quay.io");
  EXPECT_TRUE(result.addresses.empty());
  EXPECT_EQ(result.error, "quay.io: malformed answer (bad address record)");
}

// Every prefix of a real answer, and every byte of it flipped: never a crash, always one call.
TEST(AddressResolverTest, MangledAnswersNeverCrash) {
  const auto good = response_bytes(
      "quay.io", kA, {"quay.io. 60 IN CNAME cdn.quay.io.", "cdn.quay.io. 60 IN A 192.0.2.1"});
  std::vector<std::vector<std::uint8_t>> variants;
  for (std::size_t size = 0; size < good.size(); ++size) {
    variants.emplace_back(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(size));
  }
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (std::uint8_t mask : {0x01, 0x40, 0x80, 0xff}) {
      auto flipped = good;
      flipped[i] ^= mask;
      variants.push_back(std::move(flipped));
    }
  }
  variants.push_back(std::vector<std::uint8_t>(300, 0xc0));
  for (const auto& bytes : variants) {
    TestBed bed;
    bed.upstream.set("quay.io", kA, raw(bytes));
    bed.upstream.set("quay.io", kAaaa, raw(bytes));
    auto result = bed.resolve("quay.io");
    // A flip may leave a valid answer (in a TTL, or the address itself).
    if (result.addresses.empty()) {
      EXPECT_NE(result.error, "");
    }
  }
}

TEST(AddressResolverTest, SecondResolveIsAnsweredFromTheCache) {
  TestBed bed;
  bed.serve("quay.io", {"quay.io. 60 IN A 192.0.2.1"}, {});
  auto first = bed.resolve("quay.io");
  auto second = bed.resolve("quay.io");
  EXPECT_EQ(first.addresses, second.addresses);
  EXPECT_EQ(bed.upstream.query_count(), 2U);
  EXPECT_EQ(bed.resolver.counters().lookups.value(), 1U);
  EXPECT_EQ(bed.resolver.counters().cache_hits.value(), 1U);
}

TEST(AddressResolverTest, CacheEntryExpiresWithTheSmallestTtl) {
  TestBed bed;
  bed.serve("quay.io", {"quay.io. 60 IN A 192.0.2.1"}, {"quay.io. 30 IN AAAA 2001:db8::1"});
  bed.resolve("quay.io");
  bed.clock.advance(seconds(29));
  bed.resolve("quay.io");
  EXPECT_EQ(bed.upstream.query_count(), 2U);
  bed.clock.advance(seconds(2));
  bed.resolve("quay.io");
  EXPECT_EQ(bed.upstream.query_count(), 4U);
}

TEST(AddressResolverTest, CnameTtlBoundsTheCacheLifetime) {
  TestBed bed;
  bed.serve("quay.io", {"quay.io. 10 IN CNAME cdn.quay.io.", "cdn.quay.io. 300 IN A 192.0.2.1"},
            {});
  bed.resolve("quay.io");
  bed.clock.advance(seconds(9));
  bed.resolve("quay.io");
  EXPECT_EQ(bed.upstream.query_count(), 2U);
  bed.clock.advance(seconds(2));
  bed.resolve("quay.io");
  EXPECT_EQ(bed.upstream.query_count(), 4U);
}

TEST(AddressResolverTest, TtlIsClampedToLimits) {
  TestBed bed;
  bed.serve("short.example", {"short.example. 0 IN A 192.0.2.1"}, {});
  bed.serve("long.example", {"long.example. 86400 IN A 192.0.2.2"}, {});
  bed.resolve("short.example");
  bed.resolve("long.example");
  bed.clock.advance(seconds(4));
  bed.resolve("short.example");  // min_ttl 5 s
  EXPECT_EQ(bed.upstream.query_count(), 4U);
  bed.clock.advance(seconds(2));
  bed.resolve("short.example");
  EXPECT_EQ(bed.upstream.query_count(), 6U);
  bed.clock.advance(seconds(293));
  bed.resolve("long.example");  // max_ttl 300 s: at 299 s still cached
  EXPECT_EQ(bed.upstream.query_count(), 6U);
  bed.clock.advance(seconds(2));
  bed.resolve("long.example");
  EXPECT_EQ(bed.upstream.query_count(), 8U);
}

TEST(AddressResolverTest, NegativeAnswerIsCachedForNegativeTtl) {
  TestBed bed;
  bed.upstream.set("nope.example", kA, answer({}, 3));
  bed.upstream.set("nope.example", kAaaa, answer({}, 3));
  bed.resolve("nope.example");
  bed.clock.advance(seconds(4));
  auto cached = bed.resolve("nope.example");
  EXPECT_EQ(cached.error, "nope.example: NXDOMAIN");
  EXPECT_EQ(bed.upstream.query_count(), 2U);
  EXPECT_EQ(bed.resolver.counters().cache_hits.value(), 1U);
  bed.clock.advance(seconds(2));
  bed.resolve("nope.example");
  EXPECT_EQ(bed.upstream.query_count(), 4U);
}

TEST(AddressResolverTest, ConcurrentResolvesShareOneLookup) {
  TestBed bed;
  bed.serve("quay.io", {"quay.io. 60 IN A 192.0.2.1"}, {});
  std::vector<ResolveResult> results;
  for (int i = 0; i < 3; ++i) {
    bed.resolver.resolve("quay.io",
                         [&](ResolveResult result) { results.push_back(std::move(result)); });
  }
  bed.run();
  ASSERT_EQ(results.size(), 3U);
  for (const auto& result : results) {
    EXPECT_EQ(result.addresses, std::vector<core::IpAddress>{ip("192.0.2.1")});
  }
  EXPECT_EQ(bed.upstream.query_count(), 2U);
  EXPECT_EQ(bed.resolver.counters().lookups.value(), 1U);
}

TEST(AddressResolverTest, StaleAddressesServedWhenUpstreamFails) {
  TestBed bed;
  bed.serve("quay.io", {"quay.io. 60 IN A 192.0.2.1"}, {});
  bed.resolve("quay.io");
  bed.upstream.set("quay.io", kA, timeout());
  bed.upstream.set("quay.io", kAaaa, timeout());
  bed.clock.advance(seconds(120));
  auto stale = bed.resolve("quay.io");
  EXPECT_EQ(stale.error, "");
  EXPECT_EQ(stale.addresses, std::vector<core::IpAddress>{ip("192.0.2.1")});
  EXPECT_EQ(bed.resolver.counters().stale_served.value(), 1U);
  EXPECT_EQ(bed.upstream.query_count(), 4U);
  // The failure is remembered for negative_ttl, answered stale meanwhile.
  EXPECT_EQ(bed.resolve("quay.io").addresses, stale.addresses);
  EXPECT_EQ(bed.upstream.query_count(), 4U);
  EXPECT_EQ(bed.resolver.counters().stale_served.value(), 2U);
  // serve_stale (10 min) counts from the addresses' own expiry at 60 s.
  bed.clock.advance(seconds(535));  // 655 s
  EXPECT_EQ(bed.resolve("quay.io").addresses, stale.addresses);
  bed.clock.advance(seconds(10));  // 665 s
  auto gone = bed.resolve("quay.io");
  EXPECT_TRUE(gone.addresses.empty());
  EXPECT_EQ(gone.error, "quay.io: timed out");
}

TEST(AddressResolverTest, NxdomainIsNotAnsweredStale) {
  TestBed bed;
  bed.serve("quay.io", {"quay.io. 60 IN A 192.0.2.1"}, {});
  bed.resolve("quay.io");
  bed.upstream.set("quay.io", kA, answer({}, 3));
  bed.upstream.set("quay.io", kAaaa, answer({}, 3));
  bed.clock.advance(seconds(61));
  EXPECT_EQ(bed.resolve("quay.io").error, "quay.io: NXDOMAIN");
  EXPECT_EQ(bed.resolver.counters().stale_served.value(), 0U);
}

TEST(AddressResolverTest, RefusesInvalidHostNamesWithoutAQuery) {
  TestBed bed;
  const std::vector<std::string> invalid = {"",
                                            "Quay.io",
                                            "quay..io",
                                            ".quay.io",
                                            "quay.io.",
                                            "quay_io",
                                            "-quay.io",
                                            "quay-.io",
                                            "quay.io\n",
                                            std::string("quay\0io", 7),
                                            "192.0.2.1",
                                            "127.1",
                                            "::1",
                                            "[::1]",
                                            std::string(64, 'a') + ".io",
                                            std::string(250, 'a') + ".io"};
  for (const auto& host : invalid) {
    auto result = bed.resolve(host);
    EXPECT_TRUE(result.addresses.empty());
    EXPECT_EQ(result.error.rfind("invalid host name \"", 0), 0U) << result.error;
    EXPECT_EQ(result.error.find('\n'), std::string::npos);
  }
  EXPECT_EQ(bed.upstream.query_count(), 0U);
  EXPECT_EQ(bed.resolver.counters().invalid_names.value(), invalid.size());
}

TEST(AddressResolverTest, AcceptsLongestValidHostName) {
  TestBed bed;
  // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters.
  const std::string host = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                           std::string(63, 'c') + "." + std::string(61, 'd');
  bed.serve(host, {host + ". 60 IN A 192.0.2.1"}, {});
  EXPECT_EQ(bed.resolve(host).addresses, std::vector<core::IpAddress>{ip("192.0.2.1")});
  bed.serve("localhost", {"localhost. 60 IN A 127.0.0.1"}, {});
  EXPECT_EQ(bed.resolve("localhost").addresses, std::vector<core::IpAddress>{ip("127.0.0.1")});
  EXPECT_EQ(bed.resolver.counters().invalid_names.value(), 0U);
}

TEST(AddressResolverTest, CacheIsBoundedByMaxEntries) {
  AddressResolverLimits limits;
  limits.max_entries = 2;
  TestBed bed(limits);
  bed.serve("a.example", {"a.example. 100 IN A 192.0.2.1"}, {});
  bed.serve("b.example", {"b.example. 200 IN A 192.0.2.2"}, {});
  bed.serve("c.example", {"c.example. 300 IN A 192.0.2.3"}, {});
  bed.resolve("a.example");
  bed.resolve("b.example");
  bed.resolve("c.example");  // evicts a, which expires soonest
  EXPECT_EQ(bed.upstream.query_count(), 6U);
  bed.resolve("b.example");
  bed.resolve("c.example");
  EXPECT_EQ(bed.upstream.query_count(), 6U);
  bed.resolve("a.example");
  EXPECT_EQ(bed.upstream.query_count(), 8U);
  EXPECT_EQ(bed.resolver.counters().cache_hits.value(), 2U);
}

TEST(AddressResolverTest, LookupsInFlightAreBounded) {
  AddressResolverLimits limits;
  limits.max_in_flight = 1;
  TestBed bed(limits);
  bed.serve("a.example", {"a.example. 100 IN A 192.0.2.1"}, {});
  std::vector<ResolveResult> results;
  bed.resolver.resolve("a.example",
                       [&](ResolveResult result) { results.push_back(std::move(result)); });
  bed.resolver.resolve("b.example",
                       [&](ResolveResult result) { results.push_back(std::move(result)); });
  bed.run();
  ASSERT_EQ(results.size(), 2U);
  EXPECT_EQ(results[0].error, "b.example: too many lookups in flight");
  EXPECT_EQ(results[1].addresses, std::vector<core::IpAddress>{ip("192.0.2.1")});
  EXPECT_EQ(bed.upstream.query_count(), 2U);
}

TEST(AddressResolverTest, LookupOutlivesTheResolver) {
  asio::io_context io;
  FakeClock clock;
  TableUpstream upstream(io);
  upstream.set("quay.io", kA, answer({"quay.io. 60 IN A 192.0.2.1"}));
  upstream.set("quay.io", kAaaa, answer({}));
  std::optional<ResolveResult> out;
  {
    AddressResolver resolver(io, upstream, clock);
    resolver.resolve("quay.io", [&](ResolveResult result) { out = std::move(result); });
  }
  io.run();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->addresses, std::vector<core::IpAddress>{ip("192.0.2.1")});
}

TEST(AddressResolverTest, ResolvesFromManyThreads) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&io] { io.run(); });
  FakeClock clock;
  TableUpstream upstream(io);
  for (int i = 0; i < 10; ++i) {
    const std::string name = "h" + std::to_string(i) + ".example";
    upstream.set(name, kA, answer({name + ". 60 IN A 192.0.2." + std::to_string(i + 1)}));
    upstream.set(name, kAaaa, answer({}));
  }
  AddressResolver resolver(io, upstream, clock);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  std::atomic<int> done{0};
  std::atomic<int> wrong{0};
  {
    std::vector<std::jthread> callers;
    callers.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      callers.emplace_back([&] {
        for (int i = 0; i < kPerThread; ++i) {
          const int n = i % 10;
          resolver.resolve("h" + std::to_string(n) + ".example", [&, n](ResolveResult result) {
            const bool good = io.get_executor().running_in_this_thread() &&
                              result.addresses.size() == 1 &&
                              result.addresses[0].to_string() == "192.0.2." + std::to_string(n + 1);
            if (!good) ++wrong;
            ++done;
          });
        }
      });
    }
  }
  for (int i = 0; i < 1000 && done < kThreads * kPerThread; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  work.reset();
  io_thread.join();
  EXPECT_EQ(done, kThreads * kPerThread);
  EXPECT_EQ(wrong, 0);
  // Ten names, each looked up once.
  EXPECT_EQ(upstream.query_count(), 20U);
}

}  // namespace
}  // namespace pullthrough::dns
