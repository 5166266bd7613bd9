// The TLS server configuration of the registry front door: TLS 1.2 and 1.3 with modern AEAD
// suites, ALPN http/1.1, session resumption, and a certificate chosen per handshake by SNI. Only
// intercepted names get one; any other name, or none, fails the handshake with an alert, so the
// appliance can never act as a general man-in-the-middle.
#pragma once

#include "core/asio.hpp"

#include <functional>
#include <memory>
#include <string_view>

#include <boost/asio/ssl/context.hpp>

#include "certs/leaf_store.hpp"
#include "core/counters.hpp"

namespace pullthrough::proxy {

#define PULLTHROUGH_SERVER_TLS_COUNTERS(COUNTER)                                         \
  COUNTER(certificates_served, "handshakes given a certificate for an intercepted name") \
  COUNTER(names_refused, "handshakes refused: SNI is not an intercepted name")           \
  COUNTER(no_name_refused, "handshakes refused: no SNI")                                 \
  COUNTER(issue_failures, "handshakes failed: a certificate could not be issued")

struct ServerTlsCounters {
  PULLTHROUGH_SERVER_TLS_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_SERVER_TLS_COUNTERS)
};

class ServerTls {
 public:
  // `intercepted(name)` gets the SNI in lower case and says whether to serve it. `leaves` must
  // outlive this object. Both are called on the io_context thread doing the handshake.
  ServerTls(certs::LeafStore& leaves, std::function<bool(std::string_view)> intercepted);
  ServerTls(const ServerTls&) = delete;
  ServerTls& operator=(const ServerTls&) = delete;

  boost::asio::ssl::context& context() { return context_; }
  const ServerTlsCounters& counters() const { return counters_; }

 private:
  static int on_server_name(SSL* ssl, int* alert, void* self);
  int choose_certificate(SSL* ssl, int* alert);

  certs::LeafStore& leaves_;
  std::function<bool(std::string_view)> intercepted_;
  boost::asio::ssl::context context_;
  ServerTlsCounters counters_;
};

// The SNI of an established connection in lower case ("" when none).
std::string server_name_of(SSL* ssl);

}  // namespace pullthrough::proxy
