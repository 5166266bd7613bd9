// The TLS front door of the registry proxy: accepts connections on proxy.listen from clients in
// proxy.allow, at most proxy.max_connections_per_client open from one address, completes the TLS
// handshake (certificate by SNI, see server_tls.hpp) within a deadline, and hands the established
// stream, with the registry its SNI names, to a handler.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "config/config.hpp"
#include "core/event_loops.hpp"
#include "core/net.hpp"
#include "core/service.hpp"
#include "core/tcp_listener.hpp"
#include "proxy/server_tls.hpp"
#include "proxy/untrusted_clients.hpp"

namespace pullthrough::proxy {

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

struct TlsConnection {
  // Handshake done, on the connection's own strand. The handler owns it from here on.
  std::unique_ptr<TlsStream> stream;
  // The registry the SNI names. Points into the configuration, which outlives every connection.
  const config::RegistryConfig* registry = nullptr;
  std::string server_name;  // the SNI, lower case
  core::Endpoint peer;
  core::Endpoint local;
  // True once the service is stopping: finish the request in hand, then close instead of
  // waiting for another. Safe from any thread.
  std::function<bool()> stopping;
  // Has `wake` run on the connection's strand once the service starts stopping (at once if it
  // already has), so that a handler waiting for a client's next request ends then, not at its
  // request timeout. A later call replaces the earlier `wake`; a queued one may still run.
  std::function<void(std::function<void()> wake)> on_stopping;
};

// A coroutine per connection, started on the connection's strand. It should end soon after
// `stopping()` turns true (an idle one at the `on_stopping` wake-up), within the drain deadline,
// and must not throw for network errors.
using TlsHandler = std::function<boost::asio::awaitable<void>(TlsConnection)>;

// Told of each handshake that failed because the client sent one of the alerts that mean it does
// not trust the appliance's CA (untrusted_clients.hpp). `peer` is the client's address as the
// front door saw it, an IPv4-mapped IPv6 address given as its IPv4. Called on that connection's
// strand, so calls for different connections may run at once on different threads; must not
// block.
using UntrustedClientHandler =
    std::function<void(const core::Endpoint& peer, CertificateAlert alert)>;

#define PULLTHROUGH_FRONT_DOOR_COUNTERS(COUNTER)                                  \
  COUNTER(handshakes_completed, "TLS handshakes completed")                       \
  COUNTER(handshakes_failed, "TLS handshakes failed (bad SNI, protocol, alert)")  \
  COUNTER(handshakes_untrusted_bad_certificate,                                   \
          "TLS handshakes the client failed with alert bad_certificate: it does " \
          "not trust the appliance's CA")                                         \
  COUNTER(handshakes_untrusted_certificate_unknown,                               \
          "TLS handshakes the client failed with alert certificate_unknown: it "  \
          "does not trust the appliance's CA")                                    \
  COUNTER(handshakes_untrusted_unknown_ca,                                        \
          "TLS handshakes the client failed with alert unknown_ca: it does not "  \
          "trust the appliance's CA")                                             \
  COUNTER(handshake_timeouts, "TLS handshakes not finished in time")              \
  COUNTER(sessions_resumed, "TLS handshakes that resumed a session")              \
  COUNTER(connections_refused_per_client,                                         \
          "connections closed because their client address already had "          \
          "proxy.max_connections_per_client open")

struct FrontDoorCounters {
  PULLTHROUGH_FRONT_DOOR_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_FRONT_DOOR_COUNTERS)
};

struct FrontDoorLimits {
  std::size_t max_connections = 4096;
  // Open from one client address (IPv4-mapped IPv6 counts as its IPv4); 0: no such limit.
  std::size_t max_connections_per_client = 256;
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(10);
  // Event loops the connections run on, one thread each (core/event_loops.hpp); 0: one per CPU.
  unsigned event_loops = 0;
};

class TlsFrontDoor final : public core::Service {
 public:
  // `config` and `tls` must outlive the service and its connections. `on_untrusted_client` may
  // be empty; the handshakes_untrusted_* counters count such clients either way.
  TlsFrontDoor(boost::asio::io_context& io, const config::Config& config, ServerTls& tls,
               TlsHandler handler, FrontDoorLimits limits = {},
               UntrustedClientHandler on_untrusted_client = {});
  ~TlsFrontDoor() override;

  std::string_view name() const override { return "proxy"; }
  void start() override;
  void stop(std::function<void()> drained) override;

  const std::vector<core::Endpoint>& bound_endpoints() const;
  const FrontDoorCounters& counters() const;
  // TLS connections open now (being handshaken or served).
  std::size_t open_connections() const;
  const core::ListenerCounters& listener_counters() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  // Declared after state_, so destroyed first: the connections' coroutines still queued on the
  // loops are destroyed while the state they refer to is alive.
  std::shared_ptr<core::EventLoops> loops_;
};

}  // namespace pullthrough::proxy
