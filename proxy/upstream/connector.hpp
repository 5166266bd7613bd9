// Making a connection to an upstream origin (the registry, its token realm, a redirect target):
//  - the host name resolved through a core::HostResolver (the real resolvers, dns.upstreams),
//    never the system resolver; an address that is one of the appliance's own is refused, since
//    a request to it would come back to this proxy;
//  - TCP to each address in turn, each within the connect timeout;
//  - for https, TLS 1.2 or later verified against the system trust store plus the registry's
//    ca_file (trusted for every connection made on the registry's behalf), with SNI and host name
//    (or IP address) verification, within the handshake timeout.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include "config/config.hpp"
#include "core/counters.hpp"
#include "core/host_resolver.hpp"
#include "core/net.hpp"
#include "proxy/upstream/connection.hpp"
#include "proxy/upstream/registry_upstream.hpp"
#include "proxy/upstream/url.hpp"

namespace pullthrough::proxy {

struct ConnectLimits {
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(3);  // per address tried
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(30);
};

class Connector {
 public:
  // `resolver` and `connections_opened` must outlive the connector. Throws std::runtime_error
  // naming the file when the registry's ca_file cannot be loaded.
  Connector(boost::asio::io_context& io, const config::RegistryConfig& registry,
            std::vector<core::IpAddress> own_addresses, core::HostResolver& resolver,
            ConnectLimits limits, core::Counter& connections_opened);
  // For a service that is not a registry (the S3 endpoint): `name` is for messages, `ca_file`
  // (may be empty) is trusted on top of the system store.
  Connector(boost::asio::io_context& io, std::string_view name, const std::string& ca_file,
            std::vector<core::IpAddress> own_addresses, core::HostResolver& resolver,
            ConnectLimits limits, core::Counter& connections_opened);

  // A connection on a strand of its own, or null with `failure` saying why (resolve,
  // own_address, connect, tls or timeout).
  boost::asio::awaitable<std::unique_ptr<Connection>> connect(const Origin& origin,
                                                              UpstreamResult& failure);

 private:
  boost::asio::awaitable<std::unique_ptr<Connection>> connect_on_strand(
      boost::asio::any_io_executor strand, const Origin& origin, UpstreamResult& failure);

  boost::asio::io_context& io_;
  std::vector<core::IpAddress> own_addresses_;
  core::HostResolver& resolver_;
  ConnectLimits limits_;
  core::Counter& connections_opened_;
  boost::asio::ssl::context tls_{boost::asio::ssl::context::tls_client};
};

}  // namespace pullthrough::proxy
