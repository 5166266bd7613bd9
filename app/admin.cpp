#include "app/admin.hpp"

#include "core/asio.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "app/cache_admin.hpp"

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

Json bypassed_json(const core::IpAddress& client, core::SystemTime since, core::SystemTime until,
                   health::CertificateAlert alert) {
  return Json{{"address", client.to_string()},
              {"since", format_rfc3339(since)},
              {"until", format_rfc3339(until)},
              {"alert", std::string(health::to_string(alert))}};
}

Json intercept_json(const config::InterceptConfig& intercept) {
  return Json{{"intercept", config::to_string(intercept)},
              {"untrusted_bypass", core::format_duration(intercept.untrusted_bypass)}};
}

// What /healthz and GET /clients both say of the clients: the scope, the bypassed clients and
// how many were intercepted in the last hour.
Json scope_json(const config::InterceptConfig& intercept,
                const health::ClientScope::Status& status) {
  Json bypassed = Json::array();
  for (const auto& b : status.bypassed) {
    bypassed.push_back(bypassed_json(b.client, b.since, b.until, b.alert));
  }
  Json out = intercept_json(intercept);
  out["bypassed"] = std::move(bypassed);
  out["intercepted_last_hour"] = status.intercepted;
  return out;
}

// The clients part of /healthz: who is intercepted, and who is not for now and why.
Json clients_json(const AdminSources& sources) {
  const auto& intercept = sources.config->dns.intercept;
  if (sources.scope != nullptr) {
    auto status = sources.scope->status();
    Json out = scope_json(intercept, status);
    out["enrolled"] = status.enrolled.size();
    return out;
  }
  Json out = intercept_json(intercept);
  if (sources.trust != nullptr) {
    // A cache alone keeps no scope: it lists the clients it reported to the DNS side.
    Json untrusted = Json::array();
    for (const auto& u : sources.trust->untrusted_now()) {
      untrusted.push_back(bypassed_json(u.client, u.since, u.until, u.alert));
    }
    out["reported_untrusted"] = std::move(untrusted);
  }
  return out;
}

Json enrolled_json(const health::EnrolledClients::Entry& entry) {
  return Json{{"address", entry.client.to_string()},
              {"since", format_rfc3339(entry.since)},
              {"via", entry.via}};
}

void text(core::HttpResponse& response, http::status status, std::string body) {
  response.result(status);
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  response.set(http::field::cache_control, "no-store");
  response.body() = std::move(body);
}

// /clients and /clients/<address>. Enrolling writes the set to state_dir (a small file, fsynced)
// on this thread: rare, and only from admin.allow.
void serve_clients(const AdminSources& sources, const core::HttpRequest& request,
                   std::string_view path, core::HttpResponse& response) {
  if (sources.scope == nullptr) {
    text(response, http::status::not_found,
         "this process runs no DNS role: the enrolled set is kept by the DNS side (--role dns "
         "or all)\n");
    return;
  }
  auto method = request.method();
  if (path == "/clients") {
    if (method != http::verb::get && method != http::verb::head) {
      response.set(http::field::allow, "GET, HEAD");
      text(response, http::status::method_not_allowed, "GET /clients lists the clients\n");
      return;
    }
    auto status = sources.scope->status();
    Json enrolled = Json::array();
    for (const auto& entry : status.enrolled) enrolled.push_back(enrolled_json(entry));
    Json out = scope_json(sources.config->dns.intercept, status);
    out["enrolled"] = std::move(enrolled);
    response.set(http::field::content_type, "application/json");
    response.set(http::field::cache_control, "no-store");
    response.body() = out.dump(2) + "\n";
    return;
  }
  auto address = core::parse_ip(path.substr(std::string_view("/clients/").size()));
  if (!address) {
    text(response, http::status::bad_request, "not an IP address: /clients/<address>\n");
    return;
  }
  auto client = core::unmapped(*address).to_string();
  if (method == http::verb::put) {
    auto result = sources.scope->enroll(*address, "admin");
    if (!result.ok) {
      text(response, http::status::internal_server_error, "not enrolled: " + result.error + "\n");
    } else {
      text(response, http::status::ok,
           (result.added ? "enrolled " + client : client + " was enrolled already") +
               (result.bypass_cleared ? "; its bypass is cleared\n" : "\n"));
    }
  } else if (method == http::verb::delete_) {
    auto result = sources.scope->remove(*address);
    if (!result.ok) {
      text(response, http::status::internal_server_error, "not removed: " + result.error + "\n");
    } else if (!result.removed) {
      text(response, http::status::not_found, client + " is not enrolled\n");
    } else {
      text(response, http::status::ok, "removed " + client + "\n");
    }
  } else {
    response.set(http::field::allow, "PUT, DELETE");
    text(response, http::status::method_not_allowed, "PUT enrolls the client, DELETE removes it\n");
  }
}

}  // namespace

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
  out["clients"] = clients_json(sources);
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
    if (path == "/clients" || path.starts_with("/clients/")) {
      serve_clients(sources, request, path, response);
    } else if (request.method() != http::verb::get && request.method() != http::verb::head) {
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
      response.body() = "not found: the admin listener serves /healthz, /metrics and /clients\n";
    }
    return response;
  };
}

namespace {

// Why a change is refused, or nothing when it may go ahead.
std::optional<std::string> refuse_change(const AdminSources& sources,
                                         const core::HttpRequest& request) {
  if (!sources.changes_need_token) return std::nullopt;
  if (sources.token.empty()) {
    return "the admin listener is not on a loopback address and admin.token_file is not set: "
           "changes are refused\n";
  }
  auto found = request.find(http::field::authorization);
  std::string_view given = found == request.end() ? std::string_view() : found->value();
  constexpr std::string_view kBearer = "Bearer ";
  if (given.size() != kBearer.size() + sources.token.size() || !given.starts_with(kBearer) ||
      CRYPTO_memcmp(given.data() + kBearer.size(), sources.token.data(), sources.token.size()) !=
          0) {
    return "changes need the admin token (admin.token_file) as \"Authorization: Bearer "
           "<token>\"\n";
  }
  return std::nullopt;
}

}  // namespace

core::AsyncHttpHandler make_admin_service(AdminSources sources) {
  return [sources, sync = make_admin_handler(sources)](
             const core::HttpExchange& exchange) -> asio::awaitable<core::HttpResponse> {
    const auto& request = exchange.request;
    auto method = request.method();
    if (method == http::verb::post || method == http::verb::put || method == http::verb::delete_) {
      if (auto refusal = refuse_change(sources, request)) {
        core::HttpResponse response{http::status::forbidden, request.version()};
        text(response, http::status::forbidden, *refusal);
        co_return response;
      }
    }
    auto target = request.target();
    auto question = target.find('?');
    auto path = target.substr(0, question);
    if (path == "/cache" || path.starts_with("/cache/")) {
      if (sources.retention == nullptr) {
        core::HttpResponse response{http::status::not_found, request.version()};
        text(response, http::status::not_found,
             "this process runs no cache: ask the one with the proxy role (--role proxy or "
             "all)\n");
        co_return response;
      }
      auto query =
          question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
      co_return co_await serve_cache(*sources.retention, sources.prefetcher, request, path, query);
    }
    co_return sync(exchange);
  };
}

}  // namespace pullthrough::app
