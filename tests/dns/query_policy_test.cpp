#include "dns/query_policy.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dns/wire_format.hpp"
#include "dns_test_support.hpp"
#include "health/client_scope.hpp"
#include "tests/core/fake_clock.hpp"

namespace pullthrough::dns {
namespace {

using testing::answer_with;
using testing::decode;
using ::testing::ElementsAre;
using testing::FakeUpstream;
using testing::make_query;
using testing::make_response;
using testing::timed_out;

PolicySettings test_settings() {
  PolicySettings settings;
  settings.intercepted = {"registry-1.docker.io", "docker.io", "quay.io"};
  settings.allow = {*core::Cidr::parse("192.168.0.0/16")};
  settings.per_client_qps = 5;
  settings.cache_entries = 1000;
  settings.serve_stale = std::chrono::seconds(30);
  settings.answer_ttl = std::chrono::seconds(10);
  return settings;
}

// What answer() did with one packet: its outcome, the answer sent now or later, and how often it
// asked for a Send.
struct Asked {
  Outcome outcome = Outcome::dropped;
  std::vector<std::uint8_t> answer;
  int defers = 0;
  int sends = 0;
};

class QueryPolicyTest : public ::testing::Test {
 protected:
  // The policy without sockets: a fake upstream that answers on the caller's thread, a clock
  // that moves when told, and the gate a responder would close on stop.
  Asked ask(const std::vector<std::uint8_t>& packet, const char* client = "192.168.1.20",
            bool over_tcp = false) {
    Asked asked;
    std::vector<std::uint8_t> now;
    asked.outcome = policy_->answer(packet, core::Endpoint{*core::parse_ip(client), 40000},
                                    over_tcp, now, [&asked] {
                                      ++asked.defers;
                                      return Send([&asked](std::vector<std::uint8_t> later) {
                                        ++asked.sends;
                                        asked.answer = std::move(later);
                                      });
                                    });
    if (asked.outcome == Outcome::answered) asked.answer = std::move(now);
    return asked;
  }

  Asked ask(const testing::QuerySpec& spec) { return ask(make_query(spec)); }

  core::testing::FakeClock clock_;
  health::SwitchableHealthGate gate_;
  FakeUpstream upstream_;
  std::shared_ptr<core::Gate> in_flight_ = std::make_shared<core::Gate>();
  std::shared_ptr<QueryPolicy> policy_ =
      std::make_shared<QueryPolicy>(test_settings(), gate_, upstream_, clock_, in_flight_);
};

TEST_F(QueryPolicyTest, ClientOutsideTheAllowListIsRefused) {
  auto asked =
      ask(make_query({.name = "quay.io.", .type = rrtype::kA}), "203.0.113.9", /*over_tcp=*/true);
  EXPECT_EQ(asked.outcome, Outcome::answered);
  EXPECT_EQ(decode(asked.answer).rcode, rcode::kRefused);
  EXPECT_EQ(asked.defers, 0);
  EXPECT_EQ(upstream_.calls, 0);
  EXPECT_EQ(policy_->counters().refused.value(), 1U);
  EXPECT_EQ(policy_->counters().queries_tcp.value(), 1U);
}

TEST_F(QueryPolicyTest, ClientOverItsRateGetsTcWithNoRecords) {
  gate_.set({*core::parse_ip("192.0.2.10")});
  auto query = make_query({.name = "quay.io.", .type = rrtype::kA});
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(decode(ask(query).answer).tc);
  auto limited = ask(query);
  EXPECT_EQ(limited.outcome, Outcome::answered);
  auto d = decode(limited.answer);
  EXPECT_TRUE(d.tc);
  EXPECT_EQ(d.rcode, rcode::kNoError);
  EXPECT_TRUE(d.answer.empty());
  EXPECT_TRUE(d.authority.empty());
  EXPECT_LE(limited.answer.size(), query.size());
  EXPECT_EQ(policy_->counters().rate_limited.value(), 1U);
  EXPECT_EQ(policy_->counters().rewritten.value(), 5U);
}

TEST_F(QueryPolicyTest, OpcodeOtherThanQueryIsNotImplemented) {
  auto query = make_query({.name = "quay.io.", .type = rrtype::kA});
  constexpr std::uint16_t kStatus = 2;  // RFC 1035 section 4.1.1
  auto flags = wire_format::read_u16(&query[2]);
  wire_format::put_u16(&query[2],
                       static_cast<std::uint16_t>((flags & ~wire_format::kOpcodeMask) |
                                                  (kStatus << wire_format::kOpcodeShift)));
  auto asked = ask(query);
  EXPECT_EQ(asked.outcome, Outcome::answered);
  EXPECT_EQ(decode(asked.answer).rcode, rcode::kNotImp);
  EXPECT_EQ(policy_->counters().not_implemented.value(), 1U);
  EXPECT_EQ(upstream_.calls, 0);
}

TEST_F(QueryPolicyTest, AnythingButOneQuestionIsAFormatError) {
  const std::vector<std::uint8_t> no_question{0x00, 0x07, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0};
  auto asked = ask(no_question);
  EXPECT_EQ(asked.outcome, Outcome::answered);
  ASSERT_GE(asked.answer.size(), wire_format::kHeaderSize);
  EXPECT_EQ(wire_format::rcode_of(wire_format::read_u16(&asked.answer[2])), rcode::kFormErr);
  EXPECT_EQ(wire_format::read_u16(&asked.answer[0]), 0x0007);  // the client's ID
  EXPECT_EQ(policy_->counters().format_errors.value(), 1U);
}

TEST_F(QueryPolicyTest, ResponsesAreDroppedUnanswered) {
  auto response = make_response({.qname = "quay.io.", .answer = {"quay.io. 60 IN A 1.2.3.4"}});
  auto asked = ask(response);
  EXPECT_EQ(asked.outcome, Outcome::dropped);
  EXPECT_TRUE(asked.answer.empty());
  EXPECT_EQ(asked.defers, 0);
  EXPECT_EQ(policy_->counters().responses_dropped.value(), 1U);
  EXPECT_EQ(policy_->counters().queries_udp.value(), 1U);
}

TEST_F(QueryPolicyTest, MalformedPacketsAreDroppedAndCountedByKind) {
  auto asked = ask(std::vector<std::uint8_t>{0x12, 0x34, 0x01});
  EXPECT_EQ(asked.outcome, Outcome::dropped);
  EXPECT_EQ(policy_->counters().malformed.value(), 1U);
  EXPECT_EQ(policy_->counters().malformed_short_header.value(), 1U);
}

TEST_F(QueryPolicyTest, InterceptedNameIsRewrittenWhileOpenAndForwardedWhileClosed) {
  upstream_.respond = [](auto) {
    return answer_with({.qname = "quay.io.", .answer = {"quay.io. 300 IN A 203.0.113.5"}});
  };
  gate_.set({*core::parse_ip("192.0.2.10")});
  auto open = ask({.name = "quay.io.", .type = rrtype::kA});
  EXPECT_EQ(open.outcome, Outcome::answered);
  EXPECT_EQ(open.defers, 0);
  EXPECT_THAT(decode(open.answer).answer, ElementsAre("quay.io. 10 IN A 192.0.2.10"));
  EXPECT_EQ(upstream_.calls, 0);

  gate_.close();
  auto closed = ask({.name = "quay.io.", .type = rrtype::kA});
  EXPECT_EQ(closed.outcome, Outcome::deferred);
  EXPECT_EQ(closed.defers, 1);
  EXPECT_EQ(closed.sends, 1);
  // The real registry's address, its TTL capped at answer_ttl.
  EXPECT_THAT(decode(closed.answer).answer, ElementsAre("quay.io. 10 IN A 203.0.113.5"));
  EXPECT_EQ(upstream_.calls, 1);
  EXPECT_EQ(policy_->counters().rewritten.value(), 1U);
  EXPECT_EQ(policy_->counters().intercepted_forwarded.value(), 1U);
  EXPECT_EQ(policy_->counters().forwarded.value(), 1U);
}

// dns.intercept: a client outside the scope, or bypassed because it does not trust the CA, gets
// the real answers as if the gate were closed, while other clients keep getting the cache.
class ScopedQueryPolicyTest : public QueryPolicyTest {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pullthrough-scoped-policy-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config::InterceptConfig intercept;
    intercept.all_clients = false;
    intercept.enrolled = true;
    intercept.networks = {*core::Cidr::parse("192.168.2.0/24")};
    scope_ = std::make_unique<health::ClientScope>(
        intercept, health::EnrolledClients(dir_ / "enrolled-clients"), clock_, wall_);
    auto settings = test_settings();
    settings.scope = scope_.get();
    policy_ = std::make_shared<QueryPolicy>(settings, gate_, upstream_, clock_, in_flight_);
    upstream_.respond = [](auto query) {
      auto name = testing::qname_text(query.subspan(12));
      if (name == "quay.io") {
        return answer_with({.qname = "quay.io.", .answer = {"quay.io. 300 IN A 203.0.113.5"}});
      }
      // A name whose CNAME leads into an intercepted one.
      return answer_with(
          {.qname = "cdn.example.",
           .answer = {"cdn.example. 300 IN CNAME quay.io.", "quay.io. 300 IN A 203.0.113.5"}});
    };
    gate_.set({*core::parse_ip("192.0.2.10")});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> answer_for(const char* client, const char* name = "quay.io.") {
    return decode(ask(make_query({.name = name, .type = rrtype::kA}), client).answer).answer;
  }

  std::filesystem::path dir_;
  core::testing::FakeWallClock wall_;
  std::unique_ptr<health::ClientScope> scope_;
};

TEST_F(ScopedQueryPolicyTest, OnlyClientsInScopeGetTheCache) {
  EXPECT_THAT(answer_for("192.168.2.7"), ElementsAre("quay.io. 10 IN A 192.0.2.10"));
  // Outside the scope: the real registry, with the TTL capped as when the gate is closed.
  EXPECT_THAT(answer_for("192.168.1.20"), ElementsAre("quay.io. 10 IN A 203.0.113.5"));
  EXPECT_THAT(answer_for("192.168.1.20", "cdn.example."),
              ElementsAre("cdn.example. 300 IN CNAME quay.io.", "quay.io. 300 IN A 203.0.113.5"));
  EXPECT_THAT(answer_for("192.168.2.7", "cdn.example."),
              ElementsAre("cdn.example. 300 IN CNAME quay.io.", "quay.io. 10 IN A 192.0.2.10"));
  EXPECT_EQ(policy_->counters().client_outside_scope.value(), 1U);
  EXPECT_EQ(policy_->counters().rewritten.value(), 1U);
  EXPECT_EQ(policy_->counters().intercepted_forwarded.value(), 0U);
  EXPECT_EQ(scope_->intercepted_count(), 1U);

  ASSERT_TRUE(scope_->enroll(*core::parse_ip("192.168.1.20"), "enroll").ok);
  EXPECT_THAT(answer_for("192.168.1.20"), ElementsAre("quay.io. 10 IN A 192.0.2.10"));
  EXPECT_EQ(scope_->intercepted_count(), 2U);
}

TEST_F(ScopedQueryPolicyTest, AClientThatDoesNotTrustTheCaGetsTheRealRegistryUntilItEnrolls) {
  auto client = *core::parse_ip("192.168.2.7");
  scope_->learn_untrusted(client, health::CertificateAlert::bad_certificate,
                          std::chrono::milliseconds(0), "test");
  EXPECT_THAT(answer_for("192.168.2.7"), ElementsAre("quay.io. 10 IN A 203.0.113.5"));
  EXPECT_THAT(answer_for("192.168.2.8"), ElementsAre("quay.io. 10 IN A 192.0.2.10"));
  EXPECT_EQ(policy_->counters().client_bypassed.value(), 1U);
  scope_->enroll(client, "enroll");
  EXPECT_THAT(answer_for("192.168.2.7"), ElementsAre("quay.io. 10 IN A 192.0.2.10"));
}

TEST_F(ScopedQueryPolicyTest, TheScopeIsNotAskedWhileTheGateIsClosed) {
  gate_.close();
  EXPECT_THAT(answer_for("192.168.1.20"), ElementsAre("quay.io. 10 IN A 203.0.113.5"));
  EXPECT_EQ(policy_->counters().intercepted_forwarded.value(), 1U);
  EXPECT_EQ(policy_->counters().client_outside_scope.value(), 0U);
}

TEST_F(QueryPolicyTest, CachedAnswerIsServedAtOnceWithItsTtlAged) {
  upstream_.respond = [](auto) {
    return answer_with({.qname = "example.com.", .answer = {"example.com. 300 IN A 198.51.100.1"}});
  };
  EXPECT_EQ(ask({.name = "example.com.", .type = rrtype::kA}).outcome, Outcome::deferred);
  clock_.advance(std::chrono::seconds(100));
  auto hit = ask({.name = "Example.COM.", .type = rrtype::kA, .id = 77});
  EXPECT_EQ(hit.outcome, Outcome::answered);
  EXPECT_EQ(hit.defers, 0);
  auto d = decode(hit.answer);
  EXPECT_EQ(d.id, 77);
  EXPECT_THAT(d.answer, ElementsAre("Example.COM. 200 IN A 198.51.100.1"));
  EXPECT_EQ(upstream_.calls, 1);
  EXPECT_EQ(policy_->counters().cache_hits.value(), 1U);
  EXPECT_EQ(policy_->cache_entries(), 1U);
}

TEST_F(QueryPolicyTest, UpstreamFailureServesStaleThenServfail) {
  upstream_.respond = [](auto) {
    return answer_with({.qname = "example.com.", .answer = {"example.com. 60 IN A 198.51.100.1"}});
  };
  ask({.name = "example.com.", .type = rrtype::kA});
  clock_.advance(std::chrono::seconds(70));  // expired 10 s ago; serve_stale is 30 s
  upstream_.respond = [](auto) { return timed_out(); };
  auto stale = ask({.name = "example.com.", .type = rrtype::kA});
  EXPECT_EQ(stale.outcome, Outcome::deferred);
  EXPECT_THAT(decode(stale.answer).answer, ElementsAre("example.com. 30 IN A 198.51.100.1"));
  EXPECT_EQ(policy_->counters().stale_served.value(), 1U);
  clock_.advance(std::chrono::seconds(30));  // past the window
  auto failed = ask({.name = "example.com.", .type = rrtype::kA});
  EXPECT_EQ(failed.outcome, Outcome::deferred);
  EXPECT_EQ(failed.sends, 1);
  EXPECT_EQ(decode(failed.answer).rcode, rcode::kServFail);
  EXPECT_EQ(policy_->counters().upstream_errors.value(), 2U);
  EXPECT_EQ(policy_->counters().servfail_sent.value(), 1U);
}

// An upstream that answers only when the test says so.
class HeldUpstream final : public Upstream {
 public:
  std::vector<std::function<void(ForwardResult)>> waiting;
  void forward(std::span<const std::uint8_t>, std::function<void(ForwardResult)> done) override {
    waiting.push_back(std::move(done));
  }
  void shutdown() override {}
};

// The responder's stop() waits on the gate: a forward holds a place in it until its answer has
// gone to the Send, and keeps the policy alive that long.
TEST(QueryPolicyDrainTest, ForwardHoldsTheGateAndThePolicyUntilAnswered) {
  core::testing::FakeClock clock;
  health::SwitchableHealthGate gate;
  HeldUpstream upstream;
  auto in_flight = std::make_shared<core::Gate>();
  auto policy = std::make_shared<QueryPolicy>(test_settings(), gate, upstream, clock, in_flight);
  std::vector<std::uint8_t> now;
  std::vector<std::uint8_t> later;
  auto handler = policy->handler();
  auto outcome =
      handler(make_query({.name = "example.com.", .type = rrtype::kA}),
              core::Endpoint{*core::parse_ip("192.168.1.20"), 40000}, false, now,
              [&later] { return Send([&later](std::vector<std::uint8_t> a) { later = a; }); });
  EXPECT_EQ(outcome, Outcome::deferred);
  EXPECT_EQ(in_flight->count(), 1U);
  std::weak_ptr<QueryPolicy> weak = policy;
  policy.reset();
  EXPECT_FALSE(weak.expired());

  bool drained = false;
  in_flight->close([&drained] { drained = true; });
  EXPECT_FALSE(drained);
  ASSERT_EQ(upstream.waiting.size(), 1U);
  upstream.waiting[0](
      answer_with({.qname = "example.com.", .answer = {"example.com. 60 IN A 198.51.100.1"}}));
  upstream.waiting.clear();
  EXPECT_THAT(decode(later).answer, ElementsAre("example.com. 60 IN A 198.51.100.1"));
  EXPECT_TRUE(drained);
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace pullthrough::dns
