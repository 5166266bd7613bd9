// proxy/upstream/: how the registry cache talks to the real registries. The RegistryUpstream
// interface (registry_upstream.hpp) is what the cache sees; this UpstreamClient implements it for
// one configured registry, over HTTP/1.1 with Boost.Beast, from parts that each do one job:
//
//  - Connector (connector.hpp): resolve through the real resolvers, refuse the appliance's own
//    addresses, TCP, and TLS verified against the system store plus the registry's ca_file, which
//    is trusted for every connection made on the registry's behalf (token realm and redirects).
//  - ConnectionPool (pool.hpp): keep-alive per scheme://host:port, bounded, with an idle timeout.
//    A connection whose body was not read to the end is closed.
//  - Authorizer (authorizer.hpp): answers a 401 (Bearer token from the realm, cached per realm,
//    service and scope; or Basic), once per request, and sends what worked before the next 401.
//  - This client: one exchange per hop, the 401 retry, and redirects (301, 302, 303, 307, 308)
//    for GET and HEAD, up to a limit. Authorization is only ever sent to the registry's own
//    scheme://host:port, never to a redirect's host (Docker Hub sends blob GETs to a CDN with a
//    signed URL). With UpstreamAuth::client the client's Authorization is sent instead and a 401
//    is the response; UpstreamAuth::anonymous uses an Authorizer without the credentials.
//  - forward(): one exchange, no 401 answered, no redirect followed. A body is relayed from its
//    BodySource a piece at a time (request_relay.hpp) on a new connection, never a pooled one.
//  - Timeouts: connect (per address tried), TLS handshake, and a read timeout that applies to the
//    response header and to every body read, so a stalled upstream is detected.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/counters.hpp"
#include "core/host_resolver.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

struct UpstreamLimits {
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(3);
  // For the TLS handshake, the response header, and each body read.
  std::chrono::milliseconds read_timeout = std::chrono::seconds(30);
  std::size_t max_header_bytes = std::size_t{64} * 1024;
  std::size_t max_token_body_bytes = std::size_t{1024} * 1024;
  std::size_t max_idle_per_host = 16;
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  unsigned max_redirects = 5;
};

#define PULLTHROUGH_UPSTREAM_COUNTERS(COUNTER)                                        \
  COUNTER(requests, "requests sent upstream (each retry and redirect counted)")       \
  COUNTER(connections_opened, "upstream connections opened")                          \
  COUNTER(connections_reused, "upstream requests sent on a pooled connection")        \
  COUNTER(tokens_fetched, "bearer tokens fetched from a token realm")                 \
  COUNTER(redirects_followed, "redirects followed")                                   \
  COUNTER(failures_resolve, "upstream requests failed: name did not resolve")         \
  COUNTER(failures_own_address, "upstream requests refused: name resolves to us")     \
  COUNTER(failures_connect, "upstream requests failed: could not connect in time")    \
  COUNTER(failures_tls, "upstream requests failed: TLS handshake or verification")    \
  COUNTER(failures_timeout, "upstream requests failed: no response in time")          \
  COUNTER(failures_protocol, "upstream requests failed: malformed or oversized HTTP") \
  COUNTER(failures_auth, "upstream requests failed: token endpoint unusable")         \
  COUNTER(failures_request_body, "forwarded requests failed: request body broke off or stalled")

struct UpstreamCounters {
  PULLTHROUGH_UPSTREAM_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_UPSTREAM_COUNTERS)
};

struct UpstreamSettings {
  // The registry's upstream URL, ca_file and credentials are used; `registry` must outlive the
  // client.
  const config::RegistryConfig* registry = nullptr;
  // The password for registry->credentials, already read from its password_file.
  std::string password;
  // The appliance's own addresses (handed out in DNS answers, and those it listens on): an
  // upstream resolving to one of them is refused.
  std::vector<core::IpAddress> own_addresses;
  UpstreamLimits limits;
};

class UpstreamClient final : public RegistryUpstream {
 public:
  // `resolver` and `clock` must outlive the client. Throws std::runtime_error naming the file
  // when ca_file cannot be loaded.
  UpstreamClient(boost::asio::io_context& io, UpstreamSettings settings,
                 core::HostResolver& resolver, const core::Clock& clock);
  ~UpstreamClient() override;
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  boost::asio::awaitable<UpstreamResult> send(UpstreamRequest request) override;
  boost::asio::awaitable<UpstreamResult> forward(ForwardRequest request) override;

  // Closes the pooled connections and makes new requests fail with shutting_down. Requests in
  // flight finish or fail by their timeouts. Safe from any thread.
  void shutdown();

  const UpstreamCounters& counters() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::proxy
