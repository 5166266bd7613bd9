#include "core/http_service.hpp"

#include "core/asio.hpp"

#include <list>
#include <mutex>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "core/gate.hpp"
#include "core/logging.hpp"
#include "core/spawn.hpp"

namespace pullthrough::core {
namespace {

using asio::ip::tcp;

HttpResponse plain_response(http::status status, std::string body) {
  HttpResponse res{status, 11};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  return res;
}

// Parse errors map to the status a client can act on.
http::status status_for(const error_code& ec) {
  if (ec == http::error::unexpected_body || ec == http::error::body_limit) {
    return http::status::payload_too_large;
  }
  if (ec == http::error::header_limit) return http::status::request_header_fields_too_large;
  return http::status::bad_request;
}

bool is_disconnect(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
         ec == asio::error::connection_reset || ec == asio::error::eof ||
         ec == asio::error::broken_pipe;
}

}  // namespace

// Lives as long as the service or any of its coroutines, whichever is longer.
struct HttpService::State : std::enable_shared_from_this<HttpService::State> {
  // One open connection, reachable from stop() so that an idle keep-alive connection can be
  // closed at once instead of holding the drain for its idle timeout. Touched only on the
  // connection's strand.
  struct Connection {
    beast::tcp_stream stream;
    bool idle = true;
    explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
  };

  std::string name;
  AsyncHttpHandler handler;
  HttpLimits limits;
  std::shared_ptr<spdlog::logger> log;
  Gate gate;
  HttpCounters counters;
  ListenerCounters listener_counters;
  std::unique_ptr<TcpListener> listener;

  std::mutex connections_mutex;
  std::list<std::shared_ptr<Connection>> connections;

  State(std::string service_name, AsyncHttpHandler request_handler, HttpLimits connection_limits)
      : name(std::move(service_name)),
        handler(std::move(request_handler)),
        limits(connection_limits),
        log(logger(name)) {}

  void on_connection(AcceptedConnection accepted) {
    auto connection = std::make_shared<Connection>(std::move(accepted.socket));
    auto executor = connection->stream.get_executor();
    spawn_logged(executor,
                 serve(shared_from_this(), connection, accepted.peer, accepted.local,
                       std::move(accepted.hold)),
                 log, "connection dropped");
  }

  asio::awaitable<void> write(beast::tcp_stream& stream, HttpResponse& res, error_code& ec) {
    stream.expires_after(limits.write_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == beast::error::timeout) counters.timeouts.add();
  }

  asio::awaitable<HttpResponse> answer(const HttpExchange& exchange) {
    std::string failure;
    try {
      co_return co_await handler(exchange);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    log->error("{} {}: handler failed: {}", std::string(exchange.request.method_string()),
               std::string(exchange.request.target()), failure);
    co_return plain_response(http::status::internal_server_error, "internal error\n");
  }

  // `hold` keeps the service's gate open until the connection is closed; it is the last parameter
  // so that it is destroyed before `self`, which owns the gate.
  static asio::awaitable<void> serve(std::shared_ptr<State> self,
                                     std::shared_ptr<Connection> connection, Endpoint peer,
                                     Endpoint local, [[maybe_unused]] ConnectionHold hold) {
    co_await self->serve_connection(std::move(connection), peer, local);
  }

  asio::awaitable<void> serve_connection(std::shared_ptr<Connection> connection, Endpoint peer,
                                         Endpoint local) {
    std::list<std::shared_ptr<Connection>>::iterator registered;
    {
      std::lock_guard lock(connections_mutex);
      registered = connections.insert(connections.end(), connection);
    }
    auto& stream = connection->stream;
    error_code ec;
    beast::flat_buffer buffer(limits.max_header_bytes);
    for (std::size_t served = 0; served < limits.max_requests_per_connection; ++served) {
      if (gate.closed()) break;
      http::request_parser<http::empty_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      connection->idle = true;
      stream.expires_after(served == 0 ? limits.read_timeout : limits.idle_timeout);
      co_await http::async_read_header(stream, buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
      connection->idle = false;
      if (!ec && !parser.is_done()) {
        stream.expires_after(limits.read_timeout);
        co_await http::async_read(stream, buffer, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
      }
      if (is_disconnect(ec)) break;
      if (ec == beast::error::timeout) {
        counters.timeouts.add();
        break;
      }
      if (ec) {
        counters.bad_requests.add();
        auto status = status_for(ec);
        auto res = plain_response(status, std::string(http::obsolete_reason(status)) + "\n");
        res.keep_alive(false);
        res.prepare_payload();
        co_await write(stream, res, ec);
        break;
      }
      const HttpRequest& request = parser.get();
      HttpExchange exchange{request, peer, local};
      HttpResponse res = co_await answer(exchange);
      counters.requests.add();
      res.version(request.version());
      res.set(http::field::server, "pullthrough");
      bool keep_alive =
          request.keep_alive() && !gate.closed() && served + 1 < limits.max_requests_per_connection;
      res.keep_alive(keep_alive);
      if (request.method() == http::verb::head) {
        auto size = res.body().size();
        res.body().clear();
        res.content_length(size);
      } else {
        res.prepare_payload();
      }
      co_await write(stream, res, ec);
      if (ec || !keep_alive) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.close();
    std::lock_guard lock(connections_mutex);
    connections.erase(registered);
  }

  void stop(std::function<void()> drained) {
    listener->close();
    {
      std::lock_guard lock(connections_mutex);
      for (auto& connection : connections) {
        asio::post(connection->stream.get_executor(), [connection] {
          if (connection->idle) connection->stream.cancel();
        });
      }
    }
    gate.close(std::move(drained));
  }
};

namespace {

AsyncHttpHandler asynchronous(HttpHandler handler) {
  // The lambda lives in the service's state, which outlives every request: its coroutine may
  // refer to it.
  return [handler =
              std::move(handler)](const HttpExchange& exchange) -> asio::awaitable<HttpResponse> {
    co_return handler(exchange);
  };
}

}  // namespace

HttpService::HttpService(asio::io_context& io, std::string name, std::vector<Endpoint> listen,
                         std::vector<Cidr> allow, HttpHandler handler, HttpLimits limits)
    : HttpService(io, std::move(name), std::move(listen), std::move(allow),
                  asynchronous(std::move(handler)), limits) {}

HttpService::HttpService(asio::io_context& io, std::string name, std::vector<Endpoint> listen,
                         std::vector<Cidr> allow, AsyncHttpHandler handler, HttpLimits limits)
    : state_(std::make_shared<State>(name, std::move(handler), limits)) {
  // The listener calls back into the state; a weak reference keeps the two from owning each other.
  std::weak_ptr<State> weak = state_;
  state_->listener = std::make_unique<TcpListener>(
      io, std::move(name), std::move(listen), std::move(allow), limits.max_connections,
      state_->gate, state_->listener_counters, [weak](AcceptedConnection connection) {
        if (auto state = weak.lock()) state->on_connection(std::move(connection));
      });
}

HttpService::~HttpService() = default;

std::string_view HttpService::name() const { return state_->name; }

void HttpService::start() {
  state_->listener->bind();
  state_->listener->start("http", state_);
}

void HttpService::stop(std::function<void()> drained) { state_->stop(std::move(drained)); }

std::vector<Endpoint> HttpService::bound_endpoints() const { return state_->listener->bound(); }

const HttpCounters& HttpService::counters() const { return state_->counters; }

const ListenerCounters& HttpService::listener_counters() const { return state_->listener_counters; }

}  // namespace pullthrough::core
