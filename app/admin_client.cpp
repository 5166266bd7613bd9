#include "app/admin_client.hpp"

#include <fstream>
#include <ostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace pullthrough::app {
namespace {

constexpr std::size_t kMaxAnswer = std::size_t{256} * 1024 * 1024;

asio::awaitable<void> exchange(core::Endpoint admin, http::request<http::empty_body> request,
                               std::chrono::seconds timeout, AdminAnswer& answer) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(timeout);
  error_code ec;
  co_await stream.async_connect(asio::ip::tcp::endpoint(admin.address, admin.port),
                                asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    answer.error = "connect: " + ec.message();
    co_return;
  }
  co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    answer.error = "send: " + ec.message();
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxAnswer);
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    answer.error = "read: " + ec.message();
    co_return;
  }
  answer.response = parser.release();
}

}  // namespace

AdminAnswer ask_admin(const core::Endpoint& admin, http::verb method, const std::string& target,
                      const std::string& token, std::chrono::seconds timeout) {
  asio::io_context io;
  http::request<http::empty_body> request{method, target, 11};
  request.set(http::field::host, admin.to_string());
  request.set(http::field::user_agent, "pullthrough-cli");
  request.set(http::field::connection, "close");
  if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);
  AdminAnswer answer;
  asio::co_spawn(io, exchange(admin, std::move(request), timeout, answer), asio::detached);
  io.run();
  return answer;
}

core::Endpoint admin_endpoint(const config::Config& config) {
  core::Endpoint admin = config.admin.listen;
  if (admin.address.is_unspecified()) {
    admin.address = admin.address.is_v6() ? asio::ip::address(asio::ip::address_v6::loopback())
                                          : asio::ip::address(asio::ip::address_v4::loopback());
  }
  return admin;
}

std::optional<core::Endpoint> parse_admin_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.starts_with(kScheme)) url.remove_prefix(kScheme.size());
  if (url.ends_with('/')) url.remove_suffix(1);
  return core::parse_endpoint(url);
}

std::optional<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path);
  std::string token;
  if (!in || !std::getline(in, token)) return std::nullopt;
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty()) return std::nullopt;
  return token;
}

std::optional<AdminTarget> admin_target(const config::Config& config, const Command& command,
                                        std::ostream& err) {
  AdminTarget target{admin_endpoint(config), {}};
  if (!command.admin_url.empty()) {
    auto parsed = parse_admin_url(command.admin_url);
    if (!parsed) {
      err << "pullthrough: --admin " << command.admin_url
          << " is not an admin URL (http://127.0.0.1:9090)\n";
      return std::nullopt;
    }
    target.endpoint = *parsed;
  }
  const std::string& token_file =
      !command.token_file.empty() ? command.token_file : config.admin.token_file;
  if (!token_file.empty()) {
    auto read = read_token_file(token_file);
    if (!read) {
      err << "pullthrough: cannot read the admin token from " << token_file << "\n";
      return std::nullopt;
    }
    target.token = std::move(*read);
  }
  return target;
}

}  // namespace pullthrough::app
