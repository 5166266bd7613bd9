// core/: what every part of the appliance shares and none owns: the Service contract, clocks,
// counters and the /metrics writer, logging, addresses and listeners, the TCP listener with its
// connection limit, a small HTTP service (admin, CA page), the drain gate, and OpenSSL handles.
//
// A long-running part of the appliance (DNS responder, registry proxy, health monitor, admin
// listener) as the app's supervisor sees it.
#pragma once

#include <functional>
#include <string_view>

namespace pullthrough::core {

class Service {
 public:
  virtual ~Service() = default;

  // For logs: "dns", "proxy", ...
  virtual std::string_view name() const = 0;

  // Binds listeners and schedules the service's work on the io_context it was built with. Called
  // once, on the main thread, before that io_context runs. Throws std::system_error (with the
  // address in the message) when a listener cannot be bound; the process then exits 1.
  virtual void start() = 0;

  // Closes listeners and refuses new work; work in flight carries on. `drained` is called exactly
  // once, on any thread, when the last of that work has finished and the service has nothing left
  // queued on the io_context. Called once, on an io_context thread. Must not block.
  virtual void stop(std::function<void()> drained) = 0;
};

}  // namespace pullthrough::core
