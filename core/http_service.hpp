// A small plain-HTTP/1.1 server for short, synchronous answers: the CA download page and, later,
// the admin endpoints. Every connection has a header size limit, a read timeout, an idle timeout
// and a cap on requests; the service caps connections; requests with a body are refused.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http.hpp>

#include "core/counters.hpp"
#include "core/net.hpp"
#include "core/service.hpp"
#include "core/tcp_listener.hpp"

namespace pullthrough::core {

using HttpRequest = boost::beast::http::request<boost::beast::http::empty_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

struct HttpExchange {
  const HttpRequest& request;
  Endpoint peer;
  Endpoint local;
};

// Runs on an io_context thread for each request; must not block. The service fills in
// Content-Length, Server and keep-alive handling; the handler sets status, type and body.
using HttpHandler = std::function<HttpResponse(const HttpExchange&)>;
// The same, for answers that wait on work elsewhere (a collection on the disk pool): a coroutine
// on the connection's executor, which may suspend but must not block.
using AsyncHttpHandler = std::function<boost::asio::awaitable<HttpResponse>(const HttpExchange&)>;

struct HttpLimits {
  std::size_t max_header_bytes = std::size_t{8} * 1024;
  std::chrono::milliseconds read_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  std::size_t max_connections = 256;
  std::size_t max_requests_per_connection = 1000;
};

#define PULLTHROUGH_HTTP_COUNTERS(COUNTER)                                          \
  COUNTER(requests, "requests answered")                                            \
  COUNTER(bad_requests, "requests rejected as malformed, oversized or with a body") \
  COUNTER(timeouts, "connections closed by a read or write timeout")

struct HttpCounters {
  PULLTHROUGH_HTTP_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_HTTP_COUNTERS)
};

class HttpService final : public Service {
 public:
  // `name` is used for logs ("ca-page", "admin"). `allow` empty means every client.
  HttpService(boost::asio::io_context& io, std::string name, std::vector<Endpoint> listen,
              std::vector<Cidr> allow, HttpHandler handler, HttpLimits limits = {});
  HttpService(boost::asio::io_context& io, std::string name, std::vector<Endpoint> listen,
              std::vector<Cidr> allow, AsyncHttpHandler handler, HttpLimits limits = {});
  ~HttpService() override;

  std::string_view name() const override;
  void start() override;
  void stop(std::function<void()> drained) override;

  // The addresses actually bound (a configured port 0 becomes the kernel's choice). Valid after
  // start().
  std::vector<Endpoint> bound_endpoints() const;
  const HttpCounters& counters() const;
  const ListenerCounters& listener_counters() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::core
