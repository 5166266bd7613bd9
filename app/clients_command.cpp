#include "app/clients_command.hpp"

#include "core/asio.hpp"

#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/admin_client.hpp"

namespace pullthrough::app {
namespace {

std::string padded(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

}  // namespace

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
  std::string token;
  if (!config.admin.token_file.empty())
    token = read_token_file(config.admin.token_file).value_or("");
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
  auto answer = ask_admin(admin, method, target, token);
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
