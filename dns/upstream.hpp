// Where forwarded queries go: the c-ares Forwarder in production, a canned one in tests.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace pullthrough::dns {

struct ForwardResult {
  enum class Status {
    answer,   // `answer` holds the upstream's response, whatever its rcode
    timeout,  // every upstream timed out
    error,    // could not send, connection refused by every upstream, or shut down
  };
  Status status = Status::error;
  std::vector<std::uint8_t> answer;
  std::string error;  // for logs, when status != answer
};

class Upstream {
 public:
  virtual ~Upstream() = default;
  // Sends `query` (a whole DNS message) and calls `done` exactly once with the outcome, on a
  // thread of the io_context the upstream runs on. Safe to call from any thread.
  virtual void forward(std::span<const std::uint8_t> query,
                       std::function<void(ForwardResult)> done) = 0;
  // Fails every query in flight and refuses new ones, releasing whatever keeps the io_context
  // busy. Safe from any thread.
  virtual void shutdown() = 0;
};

// What the responder forwards to when no upstream resolver is usable: every query fails at once,
// so clients get SERVFAIL (or a stale answer) instead of waiting.
class NoUpstream final : public Upstream {
 public:
  void forward(std::span<const std::uint8_t>, std::function<void(ForwardResult)> done) override {
    ForwardResult result;
    result.error = "no upstream resolver configured";
    done(std::move(result));
  }
  void shutdown() override {}
};

}  // namespace pullthrough::dns
