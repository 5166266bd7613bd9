#include "app/admin.hpp"

#include "core/asio.hpp"

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace pullthrough::app {
namespace {

using Json = nlohmann::ordered_json;

Json host_json(const health::HostStatus& host) {
  // Why the host is in its state: the check that moved it, else the latest one.
  const health::HostHealth& health = host.health;
  std::string reason = !health.reason().empty() ? health.reason()
                       : health.checked()       ? health.last().detail
                                                : "not checked yet";
  Json out{{"address", host.host.address.to_string()},
           {"endpoint", host.host.endpoint.to_string()},
           {"state", health.up() ? "up" : "down"},
           {"since", format_rfc3339(health.since())},
           {"reason", reason},
           {"streak", health.streak()},
           {"checks", health.checks()},
           {"failures", health.failures()}};
  if (health.checked()) {
    out["last_check"] = Json{{"at", format_rfc3339(health.last_at())},
                             {"ok", health.last().ok},
                             {"detail", health.last().detail},
                             {"took_ms", health.last().took.count()}};
  } else {
    out["last_check"] = nullptr;
  }
  return out;
}

Json storage_json(const AdminSources& sources) {
  auto report = sources.storage->last();
  const auto& health = report.health;
  Json out{{"ok", health.ok()},
           {"state", std::string(proxy::storage_header_value(health.problem))},
           {"reason", health.reason},
           {"path", sources.config->storage.path},
           {"min_free_bytes", sources.config->storage.min_free}};
  out["free_bytes"] = health.free_bytes ? Json(*health.free_bytes) : Json(nullptr);
  out["total_bytes"] = health.total_bytes ? Json(*health.total_bytes) : Json(nullptr);
  out["checked_at"] = format_rfc3339(report.checked_at);
  return out;
}

}  // namespace

std::string format_rfc3339(core::WallClock::TimePoint when) {
  auto since_epoch = when.time_since_epoch();
  auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
  std::time_t t = static_cast<std::time_t>(seconds.count());
  std::tm utc{};
  gmtime_r(&t, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     millis.count());
}

HealthReport health_report(const AdminSources& sources) {
  HealthReport report;
  Json out{{"status", nullptr},
           {"role", std::string(to_string(sources.role))},
           {"time", format_rfc3339(sources.clock->now())}};
  if (sources.health != nullptr) {
    auto snapshot = sources.health->snapshot();
    report.healthy = !snapshot.handed_out.empty();
    Json handed_out = Json::array();
    for (const auto& address : snapshot.handed_out) handed_out.push_back(address.to_string());
    out["dns"] = Json{{"rewriting", !snapshot.handed_out.empty()}, {"handed_out", handed_out}};
    Json hosts = Json::array();
    for (const auto& host : snapshot.hosts) hosts.push_back(host_json(host));
    out["cache_hosts"] = std::move(hosts);
  }
  if (sources.storage != nullptr) {
    out["storage"] = storage_json(sources);
    if (sources.health == nullptr) report.healthy = out["storage"]["ok"].get<bool>();
  }
  bool leaving = sources.leaving && sources.leaving();
  if (leaving) report.healthy = false;
  out["status"] = leaving ? "leaving" : report.healthy ? "ok" : "unhealthy";
  report.json = out.dump(2) + "\n";
  return report;
}

core::HttpHandler make_admin_handler(AdminSources sources) {
  return [sources = std::move(sources)](const core::HttpExchange& exchange) {
    const auto& request = exchange.request;
    core::HttpResponse response{http::status::ok, request.version()};
    auto target = request.target();
    auto path = target.substr(0, target.find('?'));
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      response.result(http::status::method_not_allowed);
      response.set(http::field::allow, "GET, HEAD");
      response.set(http::field::content_type, "text/plain; charset=utf-8");
      response.body() = "only GET and HEAD\n";
    } else if (path == "/healthz") {
      auto report = health_report(sources);
      response.result(report.healthy ? http::status::ok : http::status::service_unavailable);
      response.set(http::field::content_type, "application/json");
      response.set(http::field::cache_control, "no-store");
      response.body() = std::move(report.json);
    } else if (path == "/metrics") {
      response.set(http::field::content_type, core::kMetricsContentType);
      response.set(http::field::cache_control, "no-store");
      response.body() = sources.metrics->render();
    } else {
      response.result(http::status::not_found);
      response.set(http::field::content_type, "text/plain; charset=utf-8");
      response.body() = "not found: the admin listener serves /healthz and /metrics\n";
    }
    return response;
  };
}

}  // namespace pullthrough::app
