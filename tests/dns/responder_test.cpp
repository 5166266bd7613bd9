#include "dns/responder.hpp"

#include "core/asio.hpp"

#include <future>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "dns/answers.hpp"
#include "dns_test_support.hpp"
#include "tests/core/eventually.hpp"
#include "tests/core/fake_clock.hpp"

namespace pullthrough::dns {
namespace {

using testing::answer_with;
using testing::decode;
using ::testing::ElementsAre;
using testing::FakeUpstream;
using ::testing::HasSubstr;
using testing::make_query;
using testing::make_response;
using testing::QuerySpec;
using testing::ResponseSpec;
using testing::timed_out;

config::Config test_config(const std::string& extra = "") {
  auto loaded = config::load_string(
      "dns:\n"
      "  listen: [\"127.0.0.1:0\"]\n"
      "  upstreams: [\"127.0.0.1:1\"]\n"
      "  answer_ttl: 10s\n"
      "  cache: {max_entries: 1000, serve_stale: 30s}\n"
      "  rate_limit: {per_client_qps: 5}\n" +
          extra +
          "registries:\n"
          "  - {host: registry-1.docker.io, aliases: [docker.io]}\n"
          "  - {host: quay.io}\n",
      "t.yaml");
  EXPECT_TRUE(loaded.config);
  return *loaded.config;
}

class ResponderTest : public ::testing::Test {
 protected:
  // Answers one query through handle(); returns the wire answer or empty when dropped.
  std::vector<std::uint8_t> ask(const std::vector<std::uint8_t>& query,
                                const char* client = "192.168.1.20", bool tcp = false) {
    std::vector<std::uint8_t> answer;
    int sends = 0;
    responder_.handle(query, core::Endpoint{*core::parse_ip(client), 40000}, tcp,
                      [&](std::vector<std::uint8_t> a) {
                        ++sends;
                        answer = std::move(a);
                      });
    EXPECT_LE(sends, 1);
    return answer;
  }

  testing::Decoded ask_decoded(const QuerySpec& spec, const char* client = "192.168.1.20") {
    return decode(ask(make_query(spec), client));
  }

  config::Config config_ = test_config();
  core::testing::FakeClock clock_;
  health::SwitchableHealthGate gate_;
  FakeUpstream upstream_;
  asio::io_context io_;
  std::vector<std::string> intercepted_ = intercepted_names(config_.registries);
  Responder responder_{io_, config_.dns, intercepted_, gate_, upstream_, clock_};
};

TEST_F(ResponderTest, InterceptedNameIsRewrittenWhileTheGateIsOpen) {
  gate_.set({*core::parse_ip("192.0.2.10")});
  auto d = ask_decoded({.name = "quay.io.", .type = rrtype::kA});
  EXPECT_THAT(d.answer, ElementsAre("quay.io. 10 IN A 192.0.2.10"));
  EXPECT_EQ(upstream_.calls, 0);
  EXPECT_EQ(responder_.counters().rewritten.value(), 1U);
  EXPECT_EQ(responder_.counters().queries_a.value(), 1U);
}

TEST_F(ResponderTest, InterceptionIgnoresCaseAndKeepsTheClientsCase) {
  gate_.set({*core::parse_ip("192.0.2.10")});
  auto d = ask_decoded({.name = "DoCkEr.Io.", .type = rrtype::kA});
  EXPECT_THAT(d.question, ElementsAre("DoCkEr.Io. 1"));
  ASSERT_EQ(d.answer.size(), 1U);
  EXPECT_THAT(d.answer[0], HasSubstr("IN A 192.0.2.10"));
}

TEST_F(ResponderTest, AaaaOfInterceptedNameIsNodataNotTheRealAddress) {
  gate_.set({*core::parse_ip("192.0.2.10")});
  auto d = ask_decoded({.name = "quay.io.", .type = rrtype::kAaaa});
  EXPECT_TRUE(d.answer.empty());
  EXPECT_EQ(d.authority.size(), 1U);
  EXPECT_EQ(upstream_.calls, 0);
}

// Each thread keeps the gate's address list until the gate's generation moves: a change must
// still show on the very next query.
TEST_F(ResponderTest, EveryGateChangeShowsOnTheNextQuery) {
  upstream_.respond = [](auto) {
    return answer_with({.qname = "quay.io.", .answer = {"quay.io. 300 IN A 203.0.113.5"}});
  };
  gate_.set({*core::parse_ip("192.0.2.10")});
  EXPECT_THAT(ask_decoded({.name = "quay.io.", .type = rrtype::kA}).answer,
              ElementsAre("quay.io. 10 IN A 192.0.2.10"));
  gate_.set({*core::parse_ip("192.0.2.77")});
  EXPECT_THAT(ask_decoded({.name = "quay.io.", .type = rrtype::kA}).answer,
              ElementsAre("quay.io. 10 IN A 192.0.2.77"));
  gate_.close();
  EXPECT_THAT(ask_decoded({.name = "quay.io.", .type = rrtype::kA}).answer,
              ElementsAre("quay.io. 10 IN A 203.0.113.5"));
  gate_.set({*core::parse_ip("192.0.2.78")});
  EXPECT_THAT(ask_decoded({.name = "quay.io.", .type = rrtype::kA}).answer,
              ElementsAre("quay.io. 10 IN A 192.0.2.78"));
}

TEST_F(ResponderTest, ClosedGateForwardsInterceptedNamesWithTheTtlCapped) {
  upstream_.respond = [](auto) {
    return answer_with({.qname = "quay.io.", .answer = {"quay.io. 300 IN A 203.0.113.5"}});
  };
  auto d = ask_decoded({.name = "quay.io.", .type = rrtype::kA});
  EXPECT_THAT(d.answer, ElementsAre("quay.io. 10 IN A 203.0.113.5"));
  EXPECT_EQ(upstream_.calls, 1);
  EXPECT_EQ(responder_.counters().intercepted_forwarded.value(), 1U);
}

TEST_F(ResponderTest, GateFlipsNeverServeOneModesAnswerInTheOther) {
  upstream_.respond = [](auto) {
    return answer_with({.qname = "quay.io.", .answer = {"quay.io. 300 IN A 203.0.113.5"}});
  };
  auto closed = ask_decoded({.name = "quay.io.", .type = rrtype::kA});
  EXPECT_THAT(closed.answer, ElementsAre("quay.io. 10 IN A 203.0.113.5"));
  gate_.set({*core::parse_ip("192.0.2.10")});
  auto open = ask_decoded({.name = "quay.io.", .type = rrtype::kA});
  EXPECT_THAT(open.answer, ElementsAre("quay.io. 10 IN A 192.0.2.10"));
  gate_.close();
  auto closed_again = ask_decoded({.name = "quay.io.", .type = rrtype::kA});
  EXPECT_THAT(closed_again.answer, ElementsAre("quay.io. 10 IN A 203.0.113.5"));
}

TEST_F(ResponderTest, OtherNamesAreForwardedThenServedFromTheCache) {
  upstream_.respond = [](auto) {
    return answer_with({.qname = "example.com.", .answer = {"example.com. 300 IN A 198.51.100.1"}});
  };
  EXPECT_THAT(ask_decoded({.name = "example.com.", .type = rrtype::kA}).answer,
              ElementsAre("example.com. 300 IN A 198.51.100.1"));
  clock_.advance(std::chrono::seconds(100));
  EXPECT_THAT(ask_decoded({.name = "EXAMPLE.com.", .type = rrtype::kA, .id = 99}).answer,
              ElementsAre("EXAMPLE.com. 200 IN A 198.51.100.1"));
  EXPECT_EQ(upstream_.calls, 1);
  EXPECT_EQ(responder_.counters().cache_hits.value(), 1U);
}

TEST_F(ResponderTest, CnameIntoInterceptedNameIsRewrittenOnlyWhileOpen) {
  upstream_.respond = [](auto) {
    return answer_with(
        {.qname = "mirror.example.",
         .answer = {"mirror.example. 300 IN CNAME quay.io.", "quay.io. 60 IN A 203.0.113.5"}});
  };
  gate_.set({*core::parse_ip("192.0.2.10")});
  EXPECT_THAT(ask_decoded({.name = "mirror.example.", .type = rrtype::kA}).answer,
              ElementsAre("mirror.example. 300 IN CNAME quay.io.", "quay.io. 10 IN A 192.0.2.10"));
  gate_.close();
  // From the cache, unrewritten now.
  EXPECT_THAT(ask_decoded({.name = "mirror.example.", .type = rrtype::kA}).answer,
              ElementsAre("mirror.example. 300 IN CNAME quay.io.", "quay.io. 60 IN A 203.0.113.5"));
  EXPECT_EQ(upstream_.calls, 1);
  EXPECT_EQ(responder_.counters().cname_rewritten.value(), 1U);
}

TEST_F(ResponderTest, UpstreamRcodesAreRelayed) {
  upstream_.respond = [](auto) {
    return answer_with({.qname = "broken.example.", .rcode = rcode::kServFail});
  };
  EXPECT_EQ(ask_decoded({.name = "broken.example.", .type = rrtype::kA}).rcode, rcode::kServFail);
  upstream_.respond = [](auto) {
    return answer_with({.qname = "refused.example.", .rcode = rcode::kRefused});
  };
  EXPECT_EQ(ask_decoded({.name = "refused.example.", .type = rrtype::kA}).rcode, rcode::kRefused);
}

TEST_F(ResponderTest, EveryUpstreamTimingOutIsServfail) {
  upstream_.respond = [](auto) { return timed_out(); };
  auto d = ask_decoded({.name = "slow.example.", .type = rrtype::kA});
  EXPECT_EQ(d.rcode, rcode::kServFail);
  EXPECT_EQ(responder_.counters().upstream_errors.value(), 1U);
}

TEST_F(ResponderTest, ClientOutsideTheAllowListIsRefused) {
  auto d = ask_decoded({.name = "example.com.", .type = rrtype::kA}, "203.0.113.9");
  EXPECT_EQ(d.rcode, rcode::kRefused);
  EXPECT_EQ(upstream_.calls, 0);
  EXPECT_EQ(responder_.counters().refused.value(), 1U);
}

TEST_F(ResponderTest, RateLimitedUdpGetsTruncatedNeverAmplified) {
  gate_.set({*core::parse_ip("192.0.2.10")});
  auto query = make_query({.name = "quay.io.", .type = rrtype::kA});
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(decode(ask(query)).tc);
  auto limited = ask(query);
  EXPECT_TRUE(decode(limited).tc);
  EXPECT_TRUE(decode(limited).answer.empty());
  EXPECT_LE(limited.size(), query.size());
  EXPECT_EQ(responder_.counters().rate_limited.value(), 1U);
  // TCP is not limited: the client proved its address with a handshake.
  EXPECT_FALSE(decode(ask(query, "192.168.1.20", true)).tc);
}

TEST_F(ResponderTest, MalformedPacketsAreDroppedAndCounted) {
  EXPECT_TRUE(ask({0x12, 0x34, 0x01}).empty());
  EXPECT_EQ(responder_.counters().malformed_short_header.value(), 1U);
  auto trailing = make_query({.name = "quay.io.", .type = rrtype::kA});
  trailing.push_back(0);
  EXPECT_TRUE(ask(trailing).empty());
  EXPECT_EQ(responder_.counters().malformed_trailing_garbage.value(), 1U);
  EXPECT_EQ(responder_.counters().malformed.value(), 2U);
}

TEST_F(ResponderTest, ResponsesAreNotAnswered) {
  auto response = make_response({.qname = "quay.io.", .answer = {"quay.io. 60 IN A 1.2.3.4"}});
  EXPECT_TRUE(ask(response).empty());
  EXPECT_EQ(responder_.counters().responses_dropped.value(), 1U);
}

TEST_F(ResponderTest, OtherOpcodesAreNotImplemented) {
  auto query = make_query({.name = "quay.io.", .type = rrtype::kA});
  query[2] = static_cast<std::uint8_t>((query[2] & 0x87) | (4 << 3));  // NOTIFY
  EXPECT_EQ(decode(ask(query)).rcode, rcode::kNotImp);
}

TEST_F(ResponderTest, NoQuestionIsAFormatError) {
  std::vector<std::uint8_t> empty{0x00, 0x07, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0};
  auto answer = ask(empty);
  ASSERT_GE(answer.size(), 12U);
  EXPECT_EQ(answer[3] & 0x0F, rcode::kFormErr);
}

// The real sockets: UDP and TCP on 127.0.0.1 with a port the kernel picks.
TEST(ResponderSocketTest, AnswersOverUdpAndTcp) {
  auto config = test_config();
  core::SteadyClock clock;
  health::SwitchableHealthGate gate;
  gate.set({*core::parse_ip("192.0.2.10")});
  FakeUpstream upstream;
  upstream.respond = [](auto) {
    ResponseSpec spec{.qname = "big.example."};
    for (int i = 1; i <= 40; ++i)
      spec.answer.push_back("big.example. 60 IN A 198.51.100." + std::to_string(i));
    return answer_with(spec);
  };
  asio::io_context io;
  Responder responder(io, config.dns, intercepted_names(config.registries), gate, upstream, clock);
  responder.start();
  std::thread worker([&] { io.run(); });
  auto udp_port = responder.udp_endpoints().at(0).port;
  auto tcp_port = responder.tcp_endpoints().at(0).port;

  asio::io_context client_io;
  asio::ip::udp::socket udp(client_io, asio::ip::udp::v4());
  auto query = make_query({.name = "quay.io.", .type = rrtype::kA});
  udp.send_to(asio::buffer(query),
              asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), udp_port));
  std::vector<std::uint8_t> buffer(4096);
  auto n = udp.receive(asio::buffer(buffer));
  buffer.resize(n);
  EXPECT_THAT(decode(buffer).answer, ElementsAre("quay.io. 10 IN A 192.0.2.10"));

  auto big = make_query({.name = "big.example.", .type = rrtype::kA});
  udp.send_to(asio::buffer(big),
              asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), udp_port));
  buffer.assign(4096, 0);
  n = udp.receive(asio::buffer(buffer));
  buffer.resize(n);
  EXPECT_TRUE(decode(buffer).tc);

  asio::ip::tcp::socket tcp(client_io);
  tcp.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), tcp_port));
  // Two pipelined queries on one connection.
  std::vector<std::uint8_t> framed;
  for (const auto& q : {big, query}) {
    framed.push_back(static_cast<std::uint8_t>(q.size() >> 8));
    framed.push_back(static_cast<std::uint8_t>(q.size() & 0xFF));
    framed.insert(framed.end(), q.begin(), q.end());
  }
  asio::write(tcp, asio::buffer(framed));
  std::vector<testing::Decoded> answers;
  for (int i = 0; i < 2; ++i) {
    std::array<std::uint8_t, 2> length{};
    asio::read(tcp, asio::buffer(length));
    std::vector<std::uint8_t> message((length[0] << 8) | length[1]);
    asio::read(tcp, asio::buffer(message));
    answers.push_back(decode(message));
  }
  std::size_t total = answers[0].answer.size() + answers[1].answer.size();
  EXPECT_EQ(total, 41U);  // 40 over TCP for big.example, 1 for quay.io
  tcp.close();

  std::promise<void> drained;
  asio::post(io, [&] { responder.stop([&] { drained.set_value(); }); });
  EXPECT_EQ(drained.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  worker.join();
  EXPECT_TRUE(upstream.shut_down);
}

// The README's TCP limits (RFC 7766 section 6.2): an idle connection is closed, and connections
// past the bound are closed at once and counted.
TEST(ResponderSocketTest, TcpConnectionsAreBoundedAndIdleOnesClosed) {
  auto config = test_config();
  core::SteadyClock clock;
  health::SwitchableHealthGate gate;
  gate.set({*core::parse_ip("192.0.2.10")});
  FakeUpstream upstream;
  TcpLimits limits;
  limits.max_connections = 2;
  limits.idle_timeout = std::chrono::milliseconds(300);
  asio::io_context io;
  Responder responder(io, config.dns, intercepted_names(config.registries), gate, upstream, clock,
                      nullptr, limits);
  responder.start();
  std::thread worker([&] { io.run(); });
  const asio::ip::tcp::endpoint server(asio::ip::make_address("127.0.0.1"),
                                       responder.tcp_endpoints().at(0).port);
  auto query = make_query({.name = "quay.io.", .type = rrtype::kA});
  std::vector<std::uint8_t> framed{static_cast<std::uint8_t>(query.size() >> 8),
                                   static_cast<std::uint8_t>(query.size() & 0xFF)};
  framed.insert(framed.end(), query.begin(), query.end());
  asio::io_context client_io;
  // Answered, then it ends: EOF (or a reset) from the server.
  auto answered_then_ended = [&](asio::ip::tcp::socket& socket) {
    asio::write(socket, asio::buffer(framed));
    std::array<std::uint8_t, 2> length{};
    boost::system::error_code ec;
    asio::read(socket, asio::buffer(length), ec);
    if (ec) return false;
    std::vector<std::uint8_t> message((length[0] << 8) | length[1]);
    asio::read(socket, asio::buffer(message), ec);
    if (ec || decode(message).answer.empty()) return false;
    std::uint8_t byte = 0;
    socket.read_some(asio::buffer(&byte, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  };

  asio::ip::tcp::socket first(client_io), second(client_io), third(client_io);
  const auto& listener = responder.tcp_listener_counters();
  first.connect(server);
  second.connect(server);
  ASSERT_TRUE(
      core::testing::eventually([&] { return listener.connections_accepted.value() == 2; }));
  third.connect(server);
  boost::system::error_code ec;
  std::uint8_t byte = 0;
  third.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_EQ(listener.connections_over_limit.value(), 1U);

  auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(answered_then_ended(first));
  auto idle = std::chrono::steady_clock::now() - started;
  EXPECT_GE(idle, limits.idle_timeout - std::chrono::milliseconds(50));
  EXPECT_LT(idle, limits.idle_timeout + std::chrono::seconds(3));
  // The other never asked: closed by the same timeout, counted from its accept.
  second.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_TRUE(core::testing::eventually([&] {
    asio::ip::tcp::socket fourth(client_io);
    fourth.connect(server);
    return answered_then_ended(fourth);
  }));

  std::promise<void> drained;
  asio::post(io, [&] { responder.stop([&] { drained.set_value(); }); });
  EXPECT_EQ(drained.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  worker.join();
}

// Answers on another thread, later: the path of a real forward.
class AsyncFakeUpstream final : public Upstream {
 public:
  explicit AsyncFakeUpstream(asio::io_context& io) : io_(io) {}
  std::function<ForwardResult(std::span<const std::uint8_t>)> respond;
  void forward(std::span<const std::uint8_t> query,
               std::function<void(ForwardResult)> done) override {
    asio::post(io_, [this, bytes = std::vector<std::uint8_t>(query.begin(), query.end()),
                     done = std::move(done)] { done(respond(bytes)); });
  }
  void shutdown() override {}

 private:
  asio::io_context& io_;
};

// Many clients at once: the UDP sockets read and answer in batches, and answers that wait for
// upstream leave from the upstream's thread; every query gets exactly its own answer.
TEST(ResponderSocketTest, UdpBurstFromManyClientsGetsEveryAnswer) {
  auto config = test_config();
  config.dns.per_client_qps = 0;  // every client here is 127.0.0.1
  core::SteadyClock clock;
  health::SwitchableHealthGate gate;
  gate.set({*core::parse_ip("192.0.2.10")});
  asio::io_context upstream_io;
  auto upstream_work = asio::make_work_guard(upstream_io);
  std::thread upstream_thread([&] { upstream_io.run(); });
  AsyncFakeUpstream upstream(upstream_io);
  upstream.respond = [](std::span<const std::uint8_t> query) {
    auto checked = check_message(query);
    const auto& name = checked.summary.qname;
    return answer_with({.qname = name + ".",
                        .id = checked.summary.id,
                        .answer = {name + ". 60 IN A 198.51.100.7"}});
  };
  asio::io_context io;
  Responder responder(io, config.dns, intercepted_names(config.registries), gate, upstream, clock);
  responder.start();
  std::thread worker([&] { io.run(); });
  asio::ip::udp::endpoint server(asio::ip::make_address("127.0.0.1"),
                                 responder.udp_endpoints().at(0).port);

  constexpr int kClients = 8;
  // 128 datagrams in flight fit the default socket buffers, so none may be lost.
  constexpr int kQueriesEach = 16;
  asio::io_context client_io;
  std::vector<asio::ip::udp::socket> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back(client_io, asio::ip::udp::v4());
    timeval five_seconds{5, 0};  // a lost answer fails the test instead of hanging it
    setsockopt(clients.back().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &five_seconds,
               sizeof five_seconds);
  }
  for (int q = 0; q < kQueriesEach; ++q) {
    for (int c = 0; c < kClients; ++c) {
      // Odd queries are intercepted, even ones forwarded (each name once, so never cached).
      std::string name =
          q % 2 == 1 ? "quay.io." : "n" + std::to_string(c) + "-" + std::to_string(q) + ".example.";
      auto id = static_cast<std::uint16_t>(c * 1000 + q);
      clients[static_cast<std::size_t>(c)].send_to(
          asio::buffer(make_query({.name = name, .type = rrtype::kA, .id = id})), server);
    }
  }
  for (int c = 0; c < kClients; ++c) {
    auto& socket = clients[static_cast<std::size_t>(c)];
    std::set<std::uint16_t> ids;
    for (int q = 0; q < kQueriesEach; ++q) {
      std::vector<std::uint8_t> buffer(4096);
      auto n = socket.receive(asio::buffer(buffer));
      buffer.resize(n);
      auto d = decode(buffer);
      ASSERT_TRUE(d.ok);
      ASSERT_EQ(d.answer.size(), 1U) << testing::describe(d);
      int query_number = d.id % 1000;
      EXPECT_EQ(d.id / 1000, c);
      if (query_number % 2 == 1) {
        EXPECT_EQ(d.answer[0], "quay.io. 10 IN A 192.0.2.10");
      } else {
        EXPECT_EQ(d.answer[0], "n" + std::to_string(c) + "-" + std::to_string(query_number) +
                                   ".example. 60 IN A 198.51.100.7");
      }
      ids.insert(d.id);
    }
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(kQueriesEach));
  }
  EXPECT_EQ(responder.counters().queries_udp.value(),
            static_cast<std::uint64_t>(kClients * kQueriesEach));
  EXPECT_EQ(responder.counters().send_errors.value(), 0U);

  std::promise<void> drained;
  asio::post(io, [&] { responder.stop([&] { drained.set_value(); }); });
  EXPECT_EQ(drained.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  worker.join();
  upstream_work.reset();
  upstream_thread.join();
}

}  // namespace
}  // namespace pullthrough::dns
