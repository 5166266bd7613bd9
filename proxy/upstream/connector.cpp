#include "proxy/upstream/connector.hpp"

#include "core/asio.hpp"
#include <utility>

#include <algorithm>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "core/logging.hpp"
#include "core/openssl.hpp"

namespace pullthrough::proxy {
namespace {

using asio::ip::tcp;

// Bridges core::HostResolver's callback to a completion token. The callback may run before
// resolve() returns, and on any io_context thread, so the completion is posted to the caller's
// executor, which is kept busy (outstanding work) until then.
template <typename CompletionToken>
auto async_resolve_host(core::HostResolver& resolver, std::string host, CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(core::ResolveResult)>(
      [&resolver](auto handler, const std::string& name) {
        using Handler = decltype(handler);
        auto shared = std::make_shared<Handler>(std::move(handler));
        auto executor = asio::prefer(asio::get_associated_executor(*shared),
                                     asio::execution::outstanding_work.tracked);
        resolver.resolve(name, [shared, executor](core::ResolveResult result) {
          asio::post(executor, [shared, result = std::move(result)]() mutable {
            (*shared)(std::move(result));
          });
        });
      },
      token, std::move(host));
}

}  // namespace

Connector::Connector(asio::io_context& io, const config::RegistryConfig& registry,
                     std::vector<core::IpAddress> own_addresses, core::HostResolver& resolver,
                     ConnectLimits limits, core::Counter& connections_opened)
    : Connector(io, "registry " + registry.host, registry.ca_file, std::move(own_addresses),
                resolver, limits, connections_opened) {}

Connector::Connector(asio::io_context& io, std::string_view name, const std::string& ca_file,
                     std::vector<core::IpAddress> own_addresses, core::HostResolver& resolver,
                     ConnectLimits limits, core::Counter& connections_opened)
    : io_(io),
      own_addresses_(std::move(own_addresses)),
      resolver_(resolver),
      limits_(limits),
      connections_opened_(connections_opened) {
  for (auto& address : own_addresses_) address = core::unmapped(address);
  SSL_CTX* ctx = tls_.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  static constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, kAlpnHttp11, sizeof kAlpnHttp11);
  error_code ec;
  tls_.set_default_verify_paths(ec);
  if (ec) {
    core::logger("proxy")->warn("{}: no system trust store: {}", name, ec.message());
  }
  if (!ca_file.empty()) {
    tls_.load_verify_file(ca_file, ec);
    if (ec) {
      throw std::runtime_error(std::string(name) + ": cannot load ca_file " + ca_file + ": " +
                               ec.message());
    }
  }
  tls_.set_verify_mode(ssl::verify_peer);
}

asio::awaitable<std::unique_ptr<Connection>> Connector::connect(const Origin& origin,
                                                                UpstreamResult& failure) {
  asio::any_io_executor strand = asio::make_strand(io_);
  co_return co_await asio::co_spawn(strand, connect_on_strand(strand, origin, failure),
                                    asio::use_awaitable);
}

asio::awaitable<std::unique_ptr<Connection>> Connector::connect_on_strand(
    asio::any_io_executor strand, const Origin& origin, UpstreamResult& failure) {
  std::vector<core::IpAddress> addresses;
  if (auto literal = core::parse_ip(origin.host)) {
    addresses.push_back(*literal);
  } else {
    core::ResolveResult resolved =
        co_await async_resolve_host(resolver_, origin.host, asio::use_awaitable);
    if (resolved.addresses.empty()) {
      failure = upstream_failure(UpstreamFailure::resolve,
                                 "cannot resolve " + origin.host + ": " +
                                     (resolved.error.empty() ? "no addresses" : resolved.error));
      co_return nullptr;
    }
    addresses = std::move(resolved.addresses);
  }
  // An address of our own would send the request straight back to this proxy.
  std::erase_if(addresses, [this](const core::IpAddress& address) {
    return std::find(own_addresses_.begin(), own_addresses_.end(), core::unmapped(address)) !=
           own_addresses_.end();
  });
  if (addresses.empty()) {
    failure = upstream_failure(UpstreamFailure::own_address,
                               origin.host + " resolves to this appliance; refusing to loop");
    co_return nullptr;
  }

  beast::tcp_stream stream(strand);
  error_code ec;
  std::string errors;
  bool connected = false;
  for (const auto& address : addresses) {
    tcp::endpoint endpoint(address, origin.port);
    stream.expires_after(limits_.connect_timeout);
    co_await stream.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      connected = true;
      core::logger("proxy")->debug("connected to {} at {}", origin.key(),
                                   core::Endpoint{address, origin.port}.to_string());
      break;
    }
    error_code ignored;
    stream.socket().close(ignored);
    if (!errors.empty()) errors += ", ";
    errors += core::Endpoint{address, origin.port}.to_string() + ": " +
              (ec == beast::error::timeout ? std::string("timed out") : ec.message());
  }
  if (!connected) {
    failure = upstream_failure(UpstreamFailure::connect,
                               "cannot connect to " + origin.key() + ": " + errors);
    co_return nullptr;
  }
  connections_opened_.add();
  stream.socket().set_option(tcp::no_delay(true), ec);
  stream.expires_never();
  if (!origin.tls()) {
    co_return std::make_unique<StreamConnection<beast::tcp_stream>>(origin, std::move(stream));
  }

  UpstreamTlsStream tls_stream(std::move(stream), tls_);
  SSL* ssl_handle = tls_stream.native_handle();
  bool ip_literal = core::parse_ip(origin.host).has_value();
  // RFC 6066 section 3: SNI carries DNS names only, never an address.
  if (!ip_literal && SSL_set_tlsext_host_name(ssl_handle, origin.host.c_str()) != 1) {
    failure =
        upstream_failure(UpstreamFailure::tls, "cannot set SNI: " + core::take_openssl_errors());
    co_return nullptr;
  }
  int checked = ip_literal
                    ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), origin.host.c_str())
                    : SSL_set1_host(ssl_handle, origin.host.c_str());
  if (checked != 1) {
    failure = upstream_failure(UpstreamFailure::tls,
                               "cannot set the name to verify: " + core::take_openssl_errors());
    co_return nullptr;
  }
  SSL_set_hostflags(ssl_handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  beast::get_lowest_layer(tls_stream).expires_after(limits_.handshake_timeout);
  co_await tls_stream.async_handshake(ssl::stream_base::client,
                                      asio::redirect_error(asio::use_awaitable, ec));
  beast::get_lowest_layer(tls_stream).expires_never();
  if (ec == beast::error::timeout) {
    failure = upstream_failure(UpstreamFailure::timeout,
                               "TLS handshake with " + origin.key() + " timed out");
    co_return nullptr;
  }
  if (ec) {
    std::string reason = ec.message();
    long verify = SSL_get_verify_result(ssl_handle);
    if (verify != X509_V_OK) {
      reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    }
    failure = upstream_failure(UpstreamFailure::tls,
                               "TLS handshake with " + origin.key() + " failed: " + reason);
    co_return nullptr;
  }
  co_return std::make_unique<StreamConnection<UpstreamTlsStream>>(origin, std::move(tls_stream));
}

}  // namespace pullthrough::proxy
