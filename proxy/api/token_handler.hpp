// The appliance's token endpoint (kTokenPath on every intercepted host), which every Bearer
// challenge shown to clients names as its realm. A token request (GET with Basic credentials or
// none, or containerd's POST of an OAuth2 form) goes to the real realm the registry's challenge
// named, with the client's Authorization and body as sent; the answer comes back as it came.
// On the way the appliance notes which credentials each issued token stands for (TokenBook), so
// a client's grants outlive its short-lived tokens and survive the token service going down.
//  - The real realm unreachable or failing (5xx): the appliance issues an offline token for the
//    credentials presented. It never goes upstream; it opens public content, and private content
//    only where upstream granted those same credentials within the remembered window.
//  - No realm known for the registry yet: one is learnt from upstream's `GET /v2/` first.
//  - Credentials never go to a plain-http realm of an https registry.
#pragma once

#include "core/asio.hpp"

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "proxy/api/access_check.hpp"
#include "proxy/api/api.hpp"
#include "proxy/api/http_session.hpp"

namespace pullthrough::proxy {

// The value of `key` in an application/x-www-form-urlencoded body, decoded; empty optional when
// absent or malformed (a bad percent escape).
std::optional<std::string> form_value(std::string_view form, std::string_view key);

class TokenHandler {
 public:
  // How long an offline token lasts: clients come back to the realm soon after it recovers.
  static constexpr std::chrono::seconds kOfflineLifetime{60};
  static constexpr std::size_t kMaxFormBytes = std::size_t{64} * 1024;
  static constexpr std::size_t kMaxTokenBytes = std::size_t{1024} * 1024;

  // All must outlive the handler.
  TokenHandler(AccessBooks& books, RegistryCounters& counters, spdlog::logger& log)
      : books_(books), counters_(counters), log_(log) {}

  asio::awaitable<bool> serve(HttpSession& session, HttpSession::Parser& parser,
                              const ApiRequest& request);

 private:
  asio::awaitable<std::optional<Location>> realm_of(const ApiRequest& request);
  asio::awaitable<bool> send_offline(HttpSession& session, const ClientIdentity& holder,
                                     const std::string& host, const std::string& why);

  AccessBooks& books_;
  RegistryCounters& counters_;
  spdlog::logger& log_;
};

}  // namespace pullthrough::proxy
