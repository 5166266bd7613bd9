#include "app/clients_command.hpp"

#include "core/asio.hpp"

#include <chrono>
#include <optional>
#include <ostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace pullthrough::app {
namespace {

constexpr auto kTimeout = std::chrono::seconds(10);
constexpr std::size_t kMaxAnswer = std::size_t{16} * 1024 * 1024;

struct Answer {
  std::optional<http::response<http::string_body>> response;
  std::string error;
};

asio::awaitable<void> exchange(core::Endpoint admin, http::request<http::empty_body> request,
                               Answer& answer) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(kTimeout);
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

Answer ask(const core::Endpoint& admin, http::verb method, const std::string& target) {
  asio::io_context io;
  http::request<http::empty_body> request{method, target, 11};
  request.set(http::field::host, admin.to_string());
  request.set(http::field::user_agent, "pullthrough-clients");
  request.set(http::field::connection, "close");
  Answer answer;
  asio::co_spawn(io, exchange(admin, std::move(request), answer), asio::detached);
  io.run();
  return answer;
}

std::string padded(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

}  // namespace

core::Endpoint admin_endpoint(const config::Config& config) {
  core::Endpoint admin = config.admin.listen;
  if (admin.address.is_unspecified()) {
    admin.address = admin.address.is_v6() ? asio::ip::address(asio::ip::address_v6::loopback())
                                          : asio::ip::address(asio::ip::address_v4::loopback());
  }
  return admin;
}

std::string format_clients(const std::string& text) {
  auto json = nlohmann::json::parse(text);
  std::string out = fmt::format(
      "intercept: {}; untrusted_bypass: {}; clients handed a cache's address in the last hour: "
      "{}\n",
      json.at("intercept").get<std::string>(), json.at("untrusted_bypass").get<std::string>(),
      json.at("intercepted_last_hour").get<std::size_t>());
  const auto& enrolled = json.at("enrolled");
  out += fmt::format("\n{} enrolled\n", enrolled.size());
  if (!enrolled.empty()) {
    out += padded("ADDRESS", 40) + padded("SINCE", 26) + "VIA\n";
    for (const auto& e : enrolled) {
      out += padded(e.at("address").get<std::string>(), 40) +
             padded(e.at("since").get<std::string>(), 26) + e.at("via").get<std::string>() + "\n";
    }
  }
  const auto& bypassed = json.at("bypassed");
  out += fmt::format("\n{} bypassed (do not trust the CA: get the real registries)\n",
                     bypassed.size());
  if (!bypassed.empty()) {
    out += padded("ADDRESS", 40) + padded("SINCE", 26) + padded("UNTIL", 26) + "ALERT\n";
    for (const auto& b : bypassed) {
      out += padded(b.at("address").get<std::string>(), 40) +
             padded(b.at("since").get<std::string>(), 26) +
             padded(b.at("until").get<std::string>(), 26) + b.at("alert").get<std::string>() + "\n";
    }
  }
  return out;
}

int clients_command(const config::Config& config, const Command& command, std::ostream& out,
                    std::ostream& err) {
  auto admin = admin_endpoint(config);
  std::string target = "/clients";
  http::verb method = http::verb::get;
  if (command.kind != Command::Kind::clients_ls) {
    auto address = core::parse_ip(command.client);
    if (!address) {
      err << "pullthrough: not an IP address: " << command.client << "\n";
      return 2;
    }
    target += "/" + core::unmapped(*address).to_string();
    method = command.kind == Command::Kind::clients_add ? http::verb::put : http::verb::delete_;
  }
  auto answer = ask(admin, method, target);
  if (!answer.response) {
    err << "pullthrough: the admin listener at " << admin.to_string() << " cannot be reached ("
        << answer.error << "): is the appliance running with this "
        << "configuration?\n";
    return 1;
  }
  const auto& response = *answer.response;
  if (response.result() != http::status::ok) {
    err << "pullthrough: " << admin.to_string() << " answered " << response.result_int() << ": "
        << response.body();
    return 1;
  }
  if (command.kind != Command::Kind::clients_ls || command.json) {
    out << response.body();
    return 0;
  }
  try {
    out << format_clients(response.body());
  } catch (const std::exception& e) {
    err << "pullthrough: " << admin.to_string() << " answered what is not a client list ("
        << e.what() << ")\n";
    return 1;
  }
  return 0;
}

}  // namespace pullthrough::app
