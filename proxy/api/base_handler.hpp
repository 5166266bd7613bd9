// GET and HEAD of /v2/: the API version check, which is also where clients learn how to
// authenticate. docker builds its authorizer from this answer alone (a 200 with no challenge
// means it never sends credentials, and `docker login` would "succeed" with any password), so the
// answer is upstream's: its status and its challenges, each Bearer realm pointed at the
// appliance's token endpoint.
//  - A client without credentials is answered from the registry's last such answer while it is
//    younger than the tag TTL, else upstream is asked; that answer is remembered, so an outage
//    does not break a pull's first request. With no answer ever seen and upstream down, 200.
//  - A client with credentials (docker login checking them) is answered by upstream with them.
//    With upstream down: a token the real token service issued through the appliance was checked
//    there, so 200; an offline token, or anything else, cannot be checked: 401 or 503 saying so.
//  - The DNS side's health check (its own User-Agent) is answered here, with the store's health
//    and the client events after the ones the check saw last (health/client_events.hpp).
#pragma once

#include "core/asio.hpp"

#include <atomic>

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "health/client_events.hpp"
#include "proxy/api/access_check.hpp"
#include "proxy/api/api.hpp"
#include "proxy/api/http_session.hpp"
#include "proxy/storage_monitor.hpp"

namespace pullthrough::proxy {

bool is_health_check(const http::request_header<>& request);

class BaseHandler {
 public:
  // All must outlive the handler; `storage`, `leaving` and `client_events` may be null (see
  // RegistryProxyParts).
  BaseHandler(AccessBooks& books, RegistryCounters& counters, spdlog::logger& log,
              const StorageMonitor* storage, const std::atomic<bool>* leaving,
              const health::ClientEventLog* client_events)
      : books_(books),
        counters_(counters),
        log_(log),
        storage_(storage),
        leaving_(leaving),
        client_events_(client_events) {}

  asio::awaitable<bool> serve(HttpSession& session, const ApiRequest& request);

 private:
  asio::awaitable<bool> send_health(HttpSession& session, const http::request_header<>& request);
  // The remembered answer for clients without credentials, rewritten for this client.
  asio::awaitable<bool> send_remembered(HttpSession& session, const ApiRequest& request,
                                        const RealmBook::BaseAnswer& answer);
  asio::awaitable<bool> send_upstream_down(HttpSession& session, const ApiRequest& request,
                                           const ClientCredentials& client, const std::string& why);

  AccessBooks& books_;
  RegistryCounters& counters_;
  spdlog::logger& log_;
  const StorageMonitor* storage_;
  const std::atomic<bool>* leaving_;
  const health::ClientEventLog* client_events_;
};

}  // namespace pullthrough::proxy
