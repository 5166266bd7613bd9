#include "proxy/unavailable.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace pullthrough::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

asio::awaitable<void> answer_unavailable(certs::TlsConnection connection) {
  auto& stream = *connection.stream;
  auto& tcp = beast::get_lowest_layer(stream);
  boost::system::error_code ec;
  beast::flat_buffer buffer;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(16 * 1024);
  tcp.expires_after(std::chrono::seconds(10));
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    // No request (the client hung up, or sent something else): close with a TLS close_notify so
    // the client sees an orderly end rather than a truncated stream.
    tcp.expires_after(std::chrono::seconds(5));
    co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
    co_return;
  }
  http::response<http::string_body> res{http::status::service_unavailable, parser.get().version()};
  res.set(http::field::server, "pullthrough");
  res.set(http::field::content_type, "application/json");
  res.set("Docker-Distribution-API-Version", "registry/2.0");
  res.body() =
      R"({"errors":[{"code":"UNAVAILABLE","message":"the registry cache is not in this build of )"
      R"(pullthrough yet","detail":")" +
      connection.server_name + "\"}]}\n";
  res.keep_alive(false);
  res.prepare_payload();
  co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  tcp.expires_after(std::chrono::seconds(5));
  co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace pullthrough::proxy
