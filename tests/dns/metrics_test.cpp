#include "dns/metrics.hpp"

#include "core/asio.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "dns_test_support.hpp"
#include "tests/core/fake_clock.hpp"

namespace pullthrough::dns {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// Answers every forwarded query at once with an A record for quay.example.
class AnsweringUpstream final : public Upstream {
 public:
  void forward(std::span<const std::uint8_t>, std::function<void(ForwardResult)> done) override {
    ForwardResult r;
    r.status = ForwardResult::Status::answer;
    r.answer = testing::make_response(
        {.qname = "quay.example.", .answer = {"quay.example. 300 IN A 203.0.113.5"}});
    done(std::move(r));
  }
  void shutdown() override {}
};

class DnsMetricsTest : public ::testing::Test {
 protected:
  std::string render(const Forwarder* forwarder = nullptr) {
    core::MetricsWriter w;
    write_metrics(w, responder_, forwarder, gate_);
    return w.take();
  }

  void ask(const std::string& name) {
    responder_.handle(testing::make_query({.name = name, .type = rrtype::kA}),
                      core::Endpoint{*core::parse_ip("192.168.1.20"), 40000}, false,
                      [](std::vector<std::uint8_t>) {});
  }

  config::Config config_ = *config::load_string(
                                "dns: {listen: [\"127.0.0.1:0\"], upstreams: [\"127.0.0.1:1\"]}\n"
                                "registries: [{host: quay.io}]\n",
                                "t.yaml")
                                .config;
  core::testing::FakeClock clock_;
  health::SwitchableHealthGate gate_;
  AnsweringUpstream upstream_;
  asio::io_context io_;
  Responder responder_{io_,   config_.dns, intercepted_names(config_.registries),
                       gate_, upstream_,   clock_};
};

TEST_F(DnsMetricsTest, TheGaugesFollowTheGate) {
  EXPECT_THAT(render(), HasSubstr("\npullthrough_dns_rewriting 0\n"));
  EXPECT_THAT(render(), HasSubstr("\npullthrough_dns_cache_hosts_handed_out 0\n"));
  gate_.set({*core::parse_ip("192.0.2.10"), *core::parse_ip("192.0.2.11")});
  EXPECT_THAT(render(), HasSubstr("\npullthrough_dns_rewriting 1\n"));
  EXPECT_THAT(render(), HasSubstr("\npullthrough_dns_cache_hosts_handed_out 2\n"));
}

TEST_F(DnsMetricsTest, TheCountersAndTheCacheAreTheRespondersOwn) {
  gate_.set({*core::parse_ip("192.0.2.10")});
  ask("quay.io.");
  ask("quay.example.");
  auto text = render();
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_dns_rewritten_total counter\n"
                              "pullthrough_dns_rewritten_total 1\n"));
  EXPECT_THAT(text, HasSubstr("\npullthrough_dns_queries_a_total 2\n"));
  EXPECT_THAT(text, HasSubstr("\npullthrough_dns_cache_entries 1\n"));
  EXPECT_THAT(
      text, HasSubstr("# TYPE pullthrough_dns_tcp_listener_connections_accepted_total counter\n"));
}

TEST_F(DnsMetricsTest, ForwarderFamiliesOnlyWithAForwarder) {
  EXPECT_THAT(render(), Not(HasSubstr("pullthrough_dns_forwarder_")));
  Forwarder forwarder(io_, {core::Endpoint{*core::parse_ip("127.0.0.1"), 1}}, 1s);
  EXPECT_THAT(render(&forwarder), HasSubstr("# TYPE pullthrough_dns_forwarder_queries_sent_total "
                                            "counter\npullthrough_dns_forwarder_queries_sent_total "
                                            "0\n"));
}

TEST_F(DnsMetricsTest, TheUpstreamResolverHasAPrefixOfItsOwn) {
  AddressResolver resolver(io_, upstream_, clock_);
  core::MetricsWriter w;
  write_upstream_resolver_metrics(w, resolver, nullptr);
  EXPECT_THAT(w.text(), HasSubstr("\npullthrough_upstream_resolver_lookups_total 0\n"));
  EXPECT_THAT(w.text(), Not(HasSubstr("pullthrough_upstream_resolver_forwarder_")));
  Forwarder forwarder(io_, {core::Endpoint{*core::parse_ip("127.0.0.1"), 1}}, 1s);
  core::MetricsWriter with;
  write_upstream_resolver_metrics(with, resolver, &forwarder);
  EXPECT_THAT(with.text(),
              HasSubstr("\npullthrough_upstream_resolver_forwarder_answers_total 0\n"));
}

}  // namespace
}  // namespace pullthrough::dns
