// Forwarding queries to the upstream resolvers with c-ares, driven by Boost.Asio: c-ares's
// sockets are watched through ARES_OPT_SOCK_STATE_CB (c-ares 1.18 has no event thread of its own)
// and everything touching the channel runs on one strand.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/counters.hpp"
#include "core/net.hpp"
#include "dns/upstream.hpp"

namespace pullthrough::dns {

#define PULLTHROUGH_FORWARDER_COUNTERS(COUNTER)                            \
  COUNTER(queries_sent, "queries forwarded upstream")                      \
  COUNTER(answers, "upstream answers received (any rcode)")                \
  COUNTER(timeouts, "forwarded queries on which every upstream timed out") \
  COUNTER(errors, "forwarded queries that failed otherwise")

struct ForwarderCounters {
  PULLTHROUGH_FORWARDER_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_FORWARDER_COUNTERS)
};

class Forwarder final : public Upstream {
 public:
  // `upstreams` are tried in order; each try waits `timeout`. Throws std::runtime_error when
  // c-ares cannot be initialised.
  Forwarder(boost::asio::io_context& io, std::vector<core::Endpoint> upstreams,
            std::chrono::milliseconds timeout);
  ~Forwarder() override;
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Sends `query` (a whole DNS message) and calls `done` exactly once, on the forwarder's strand,
  // with the outcome. c-ares sends the query under an ID of its own, and the answer carries that
  // ID: the caller puts its client's ID back. Responses with any rcode (SERVFAIL, REFUSED, NOTIMP
  // included) are answers (ARES_FLAG_NOCHECKRESP). A truncated UDP answer is retried over TCP by
  // c-ares. Safe to call from any thread.
  void forward(std::span<const std::uint8_t> query,
               std::function<void(ForwardResult)> done) override;

  // Fails every query in flight with Status::error and refuses new ones. Safe from any thread.
  void shutdown() override;

  const ForwarderCounters& counters() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::dns
