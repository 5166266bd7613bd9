#include "app/appliance.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include "app/admin.hpp"
#include "app/admin_client.hpp"
#include "app/metrics.hpp"
#include "app/supervisor.hpp"
#include "app/version.hpp"
#include "certs/ca_page.hpp"
#include "certs/configured_ca.hpp"
#include "certs/leaf_store.hpp"
#include "core/http_service.hpp"
#include "core/logging.hpp"
#include "core/metrics.hpp"
#include "core/service.hpp"
#include "dns/address_resolver.hpp"
#include "dns/forwarder.hpp"
#include "dns/responder.hpp"
#include "dns/upstream_selection.hpp"
#include "health/cache_probe.hpp"
#include "health/client_scope.hpp"
#include "health/enrolled_clients.hpp"
#include "health/gate.hpp"
#include "health/monitor.hpp"
#include "proxy/client_trust.hpp"
#include "proxy/front_door.hpp"
#include "proxy/registry_cache.hpp"
#include "proxy/server_tls.hpp"

namespace pullthrough::app {
namespace {

namespace fs = std::filesystem;

constexpr int kExitFailure = 1;
constexpr int kExitConfig = 2;

template <typename T>
std::string join(const std::vector<T>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item.to_string();
  return out.empty() ? "(none)" : out;
}

std::string read_text_file(const char* path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The state directory must exist and be writable before anything is built on it.
bool prepare_state_dir(const std::string& path, spdlog::logger& log) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) {
    log.critical("cannot create state_dir {}: {}", path, ec.message());
    return false;
  }
  if (::access(path.c_str(), W_OK | X_OK) != 0) {
    log.critical("state_dir {} is not writable: {}", path, std::generic_category().message(errno));
    return false;
  }
  log.info("state_dir: {}", fs::absolute(path, ec).lexically_normal().string());
  return true;
}

// Each connection is a descriptor; the default soft limit (often 1024) is far below what a cache
// serving a LAN needs, so take the hard limit.
void raise_descriptor_limit(spdlog::logger& log) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    log.debug("descriptor limit raised from {} to {}", before, limit.rlim_cur);
  }
}

// The addresses handed out for intercepted names: `auto` expands to the non-loopback interface
// addresses found now.
std::vector<core::IpAddress> appliance_addresses(const config::ApplianceConfig& appliance,
                                                 const std::vector<core::IpAddress>& host) {
  std::vector<core::IpAddress> out = appliance.addresses;
  if (appliance.auto_addresses) {
    for (const auto& address : host) {
      if (!address.is_loopback() && std::find(out.begin(), out.end(), address) == out.end()) {
        out.push_back(address);
      }
    }
  }
  return out;
}

// Everything the proxy role runs on: the CA, its leaves and the TLS configuration, and the
// resolver it reaches upstream registries with. Built before the services that refer to it and
// destroyed after them.
struct ProxyParts {
  std::optional<certs::CertificateAuthority> ca;
  std::unique_ptr<certs::LeafStore> leaves;
  std::unique_ptr<proxy::ServerTls> tls;
  core::SteadyClock clock;
  std::unique_ptr<dns::Upstream> resolvers;
  dns::Forwarder* resolver_forwarder = nullptr;  // `resolvers`, unless there are none
  std::unique_ptr<dns::AddressResolver> resolver;
  core::SystemWallClock wall_clock;
  std::unique_ptr<proxy::ClientTrust> trust;
  proxy::RegistryCache* cache = nullptr;  // owned by the services
  core::HttpService* ca_page = nullptr;   // owned by the services
};

// The addresses an upstream registry must not resolve to: those we hand out, those of this host,
// and those the proxy listens on. A request to any of them would come back to us.
std::vector<core::IpAddress> own_addresses(const config::Config& cfg,
                                           const std::vector<core::IpAddress>& host) {
  std::vector<core::IpAddress> own = appliance_addresses(cfg.appliance, host);
  auto add = [&own](const core::IpAddress& address) {
    auto plain = core::unmapped(address);
    if (!plain.is_unspecified() && std::find(own.begin(), own.end(), plain) == own.end()) {
      own.push_back(plain);
    }
  };
  for (const auto& address : host) add(address);
  for (const auto& listen : cfg.proxy.listen) add(listen.address);
  return own;
}

// The real resolvers that `selection` found, as a dns::Upstream: a Forwarder, or a NoUpstream
// that fails every query when there are none (`none_warning` says what that costs). `forwarder`
// is set to the Forwarder, for its metrics. Null, logged as `what`, when it cannot start.
std::unique_ptr<dns::Upstream> make_forwarder(const dns::UpstreamSelection& selection,
                                              const config::Config& cfg,
                                              boost::asio::io_context& io, spdlog::logger& log,
                                              std::string_view what, std::string_view none_warning,
                                              dns::Forwarder*& forwarder) {
  if (selection.upstreams.empty()) {
    log.warn("{}", none_warning);
    return std::make_unique<dns::NoUpstream>();
  }
  try {
    auto made = std::make_unique<dns::Forwarder>(
        io, selection.upstreams,
        std::chrono::duration_cast<std::chrono::milliseconds>(cfg.dns.upstream_timeout));
    forwarder = made.get();
    return made;
  } catch (const std::exception& e) {
    log.critical("cannot start the {}: {}", what, e.what());
    return nullptr;
  }
}

// The proxy resolves upstream registries through the real resolvers, the same ones the DNS
// responder forwards to, never through the system resolver (which may be this appliance).
// With `dns_listens` false (--role proxy) no DNS listener runs here, so an upstream resolver on
// a dns.listen address is another process, not a loop.
std::optional<int> build_upstream_resolver(const config::Config& cfg, boost::asio::io_context& io,
                                           bool dns_listens, ProxyParts& parts) {
  auto log = core::logger("proxy");
  auto host_addresses = core::interface_addresses();
  config::DnsConfig dns = cfg.dns;
  if (!dns_listens) dns.listen.clear();
  auto selection = dns::select_upstreams(dns, read_text_file("/etc/resolv.conf"), host_addresses,
                                         appliance_addresses(cfg.appliance, host_addresses));
  for (const auto& error : selection.errors) log->critical("{}", error);
  if (!selection.errors.empty()) return kExitConfig;
  parts.resolvers = make_forwarder(
      selection, cfg, io, *log, "upstream resolver",
      "no usable resolver for upstream registries: cache misses will fail (set dns.upstreams)",
      parts.resolver_forwarder);
  if (!parts.resolvers) return kExitFailure;
  if (parts.resolver_forwarder != nullptr) {
    log->info("upstream registries are resolved through: {}", join(selection.upstreams));
  }
  parts.resolver = std::make_unique<dns::AddressResolver>(io, *parts.resolvers, parts.clock);
  return std::nullopt;
}

// POST /enroll on the CA page, decided by the cache's ClientTrust. Enrolling writes the enrolled
// set (a small file, synced) on the listener's thread: rare, and rate-limited.
certs::EnrollHandler enroll_handler(proxy::ClientTrust& trust) {
  return [&trust](const core::IpAddress& client) {
    using Outcome = proxy::ClientTrust::Enrolled::Outcome;
    auto enrolled = trust.enroll(client);
    certs::EnrollOutcome out;
    out.message = std::move(enrolled.message);
    switch (enrolled.outcome) {
      case Outcome::enrolled:
        out.status = http::status::ok;
        break;
      case Outcome::refused:
        out.status = http::status::forbidden;
        break;
      case Outcome::rate_limited:
        out.status = http::status::too_many_requests;
        out.retry_after = enrolled.retry_after;
        break;
      case Outcome::failed:
        out.status = http::status::internal_server_error;
        break;
    }
    return out;
  };
}

// Returns an exit status on failure.
// `scope`: the DNS side of this process (`--role all`), else null.
std::optional<int> build_proxy(const config::Config& cfg, boost::asio::io_context& io,
                               bool dns_listens, health::ClientScope* scope, ProxyParts& parts,
                               std::vector<std::unique_ptr<core::Service>>& services) {
  auto log = core::logger("certs");
  auto now = std::chrono::system_clock::now();
  try {
    parts.ca.emplace(certs::open_configured_ca(cfg, now));
  } catch (const certs::CaError& e) {
    log->critical("{}", e.what());
    return cfg.ca.cert_file.empty() ? kExitFailure : kExitConfig;
  }
  auto info = certs::describe(parts.ca->certificate());
  log->info("CA {}: {} (SHA-256 {}), valid until {}",
            cfg.ca.cert_file.empty() ? (parts.ca->generated() ? "generated" : "loaded")
                                     : "from ca.cert_file",
            info.subject, info.sha256_fingerprint, certs::format_utc(info.not_after));
  parts.leaves = std::make_unique<certs::LeafStore>(*parts.ca, certs::leaves_dir(cfg));
  auto names = dns::intercepted_names(cfg.registries);
  try {
    // Issued now rather than at the first handshake: a problem shows at start, and no client
    // waits for a key to be generated.
    for (const auto& name : names) parts.leaves->get(name, now);
  } catch (const certs::CaError& e) {
    log->critical("cannot issue certificates: {}", e.what());
    return kExitFailure;
  }
  log->info("certificates ready for {} intercepted names", names.size());
  parts.tls = std::make_unique<proxy::ServerTls>(
      *parts.leaves, [&cfg](std::string_view name) { return cfg.find_registry(name) != nullptr; });
  if (auto failed = build_upstream_resolver(cfg, io, dns_listens, parts)) return *failed;
  parts.trust = std::make_unique<proxy::ClientTrust>(cfg, parts.clock, parts.wall_clock, scope);
  // This process's DNS side hears from its cache directly; the same events in the health check's
  // answers are for other DNS sides.
  if (scope != nullptr) scope->ignore_epoch(parts.trust->events().epoch());
  try {
    auto cache = std::make_unique<proxy::RegistryCache>(
        io, cfg, *parts.tls, *parts.resolver, own_addresses(cfg, core::interface_addresses()),
        parts.trust.get());
    parts.cache = cache.get();
    services.push_back(std::move(cache));
  } catch (const std::exception& e) {
    core::logger("proxy")->critical("cannot open the cache: {}", e.what());
    return kExitFailure;
  }
  if (!cfg.proxy.http_listen.empty()) {
    auto page = std::make_unique<core::HttpService>(
        io, "ca-page", cfg.proxy.http_listen, cfg.proxy.allow,
        certs::make_ca_page_handler(*parts.ca, names, enroll_handler(*parts.trust)));
    parts.ca_page = page.get();
    services.push_back(std::move(page));
  }
  return std::nullopt;
}

// Everything the DNS role runs on. Built before the responder that refers to it and destroyed
// after it.
struct DnsParts {
  core::SteadyClock clock;
  core::SystemWallClock wall_clock;
  std::unique_ptr<health::ClientScope> scope;
  health::SwitchableHealthGate gate;
  std::unique_ptr<dns::Upstream> upstream;
  dns::Forwarder* forwarder = nullptr;  // `upstream`, unless there is none
  std::vector<core::IpAddress> handed_out;
  dns::Responder* responder = nullptr;  // owned by the services
};

// Returns an exit status on failure.
std::optional<int> build_dns(const config::Config& cfg, boost::asio::io_context& io,
                             DnsParts& parts,
                             std::vector<std::unique_ptr<core::Service>>& services) {
  auto log = core::logger("dns");
  auto host_addresses = core::interface_addresses();
  parts.handed_out = appliance_addresses(cfg.appliance, host_addresses);
  if (parts.handed_out.empty()) {
    log->warn(
        "appliance.addresses: no non-loopback address found; intercepted names "
        "will be forwarded until addresses are configured");
  } else {
    log->info("intercepted names resolve to: {}", join(parts.handed_out));
  }
  auto selection = dns::select_upstreams(cfg.dns, read_text_file("/etc/resolv.conf"),
                                         host_addresses, parts.handed_out);
  for (const auto& error : selection.errors) log->critical("{}", error);
  if (!selection.errors.empty()) return kExitConfig;
  for (const auto& dropped : selection.dropped) log->info("not forwarding to {}", dropped);
  if (!selection.upstreams.empty()) log->info("forwarding to: {}", join(selection.upstreams));
  parts.upstream = make_forwarder(selection, cfg, io, *log, "forwarder",
                                  "no usable upstream resolver: names that are not intercepted "
                                  "will get SERVFAIL (set dns.upstreams)",
                                  parts.forwarder);
  if (!parts.upstream) return kExitFailure;
  std::vector<std::string> problems;
  auto enrolled =
      health::EnrolledClients::load(fs::path(cfg.state_dir) / "enrolled-clients", problems);
  for (const auto& problem : problems) log->warn("{}", problem);
  const auto& intercept = cfg.dns.intercept;
  if (!intercept.all_clients) {
    log->info("intercepting only dns.intercept.clients: [{}] ({} enrolled)",
              config::to_string(intercept), enrolled.size());
  }
  parts.scope = std::make_unique<health::ClientScope>(intercept, std::move(enrolled), parts.clock,
                                                      parts.wall_clock);
  auto responder =
      std::make_unique<dns::Responder>(io, cfg.dns, dns::intercepted_names(cfg.registries),
                                       parts.gate, *parts.upstream, parts.clock, parts.scope.get());
  parts.responder = responder.get();
  services.push_back(std::move(responder));
  return std::nullopt;
}

// The health monitor and what it checks with. Built after the DNS and proxy parts, whose gate
// and CA it uses, and destroyed before them.
struct HealthParts {
  core::SystemWallClock wall_clock;
  std::unique_ptr<health::TlsCacheProbe> probe;
  health::HealthMonitor* monitor = nullptr;  // owned by the services
};

// The CA the cache hosts' certificates must chain to: this process's own, else the one the proxy
// role keeps on this machine (ca.cert_file, or the generated one under state_dir), read when it
// exists. `looked_at` names that file.
health::CaSource cache_ca(const config::Config& cfg, const ProxyParts& proxy,
                          std::string& looked_at) {
  if (proxy.ca) {
    return [pem = proxy.ca->certificate_pem()]() -> std::optional<std::string> { return pem; };
  }
  fs::path path = cfg.ca.cert_file.empty() ? certs::generated_ca_dir(cfg) / "ca.crt"
                                           : fs::path(cfg.ca.cert_file);
  looked_at = path.string();
  return [path]() -> std::optional<std::string> {
    std::error_code ec;
    if (!fs::exists(path, ec)) return std::nullopt;
    return read_text_file(path.c_str());
  };
}

// Returns an exit status on failure.
std::optional<int> build_health(const config::Config& cfg, boost::asio::io_context& io,
                                DnsParts& dns_parts, const ProxyParts& proxy_parts,
                                HealthParts& parts,
                                std::vector<std::unique_ptr<core::Service>>& services) {
  auto log = core::logger("health");
  std::vector<health::CacheHost> hosts;
  auto add = [&hosts](const core::IpAddress& address) {
    auto plain = core::unmapped(address);
    if (std::none_of(hosts.begin(), hosts.end(),
                     [&](const health::CacheHost& h) { return h.address == plain; })) {
      // Clients reach a registry on port 443, whatever the proxy's own listen port.
      hosts.push_back(health::CacheHost{plain, core::Endpoint{plain, 443}});
    }
  };
  if (cfg.dns.self_cache_host) {
    for (const auto& address : dns_parts.handed_out) add(address);
  }
  for (const auto& address : cfg.dns.cache_hosts) add(address);
  if (cfg.registries.empty()) {
    log->info("no registries configured: nothing is intercepted, so nothing is checked");
    return std::nullopt;
  }
  std::string looked_at;
  try {
    health::ClientEventSink events;
    if (auto* scope = dns_parts.scope.get()) {
      events = [scope](const health::ClientEventsAnswer& answer, const core::Endpoint& cache) {
        scope->apply(answer.cursor.epoch, answer.events, "cache " + cache.to_string());
      };
    }
    parts.probe = std::make_unique<health::TlsCacheProbe>(
        cfg.registries.front().host, cache_ca(cfg, proxy_parts, looked_at), std::move(events));
  } catch (const std::exception& e) {
    log->critical("{} ({})", e.what(), looked_at);
    return kExitConfig;
  }
  if (!parts.probe->verifies()) {
    log->warn(
        "no CA certificate at {} yet: until it appears, cache certificates are not verified and "
        "the check proves reachability only",
        looked_at);
  }
  auto monitor = std::make_unique<health::HealthMonitor>(
      io, std::move(hosts), cfg.health, *parts.probe, dns_parts.gate, parts.wall_clock);
  parts.monitor = monitor.get();
  services.push_back(std::move(monitor));
  return std::nullopt;
}

}  // namespace

int serve(const ServeOptions& options) {
  const auto& cfg = options.config;
  auto log = core::logger("app");
  log->info("pullthrough {} starting: role {}, config {}", version_string(),
            to_string(options.role), options.config_name);

  // A peer that closes its socket must cost an error code, not the process.
  std::signal(SIGPIPE, SIG_IGN);
  raise_descriptor_limit(*log);
  if (!prepare_state_dir(cfg.state_dir, *log)) return kExitFailure;

  unsigned thread_count = std::max(1U, std::thread::hardware_concurrency());
  AbandonableIoContext io(static_cast<int>(thread_count));
  // The parts outlive the services that refer to them.
  ProxyParts proxy_parts;
  DnsParts dns_parts;
  HealthParts health_parts;
  core::MetricsRegistry metrics;
  std::vector<std::unique_ptr<core::Service>> services;

  if (options.role != Role::proxy) {
    if (auto failed = build_dns(cfg, io, dns_parts, services)) return *failed;
  }
  if (options.role != Role::dns) {
    bool dns_listens = options.role == Role::all;
    if (auto failed =
            build_proxy(cfg, io, dns_listens, dns_parts.scope.get(), proxy_parts, services)) {
      return *failed;
    }
  }
  if (options.role != Role::proxy) {
    if (auto failed = build_health(cfg, io, dns_parts, proxy_parts, health_parts, services)) {
      return *failed;
    }
  }
  AdminSources sources;
  sources.role = options.role;
  sources.config = &cfg;
  sources.health = health_parts.monitor;
  sources.storage = proxy_parts.cache != nullptr ? &proxy_parts.cache->storage() : nullptr;
  sources.metrics = &metrics;
  sources.clock = &health_parts.wall_clock;
  if (auto* cache = proxy_parts.cache) sources.leaving = [cache] { return cache->leaving(); };
  sources.scope = dns_parts.scope.get();
  sources.trust = proxy_parts.trust.get();
  if (auto* cache = proxy_parts.cache) {
    sources.retention = &cache->retention();
    sources.prefetcher = &cache->prefetcher();
  }
  sources.changes_need_token = !cfg.admin.listen.address.is_loopback();
  if (!cfg.admin.token_file.empty()) {
    auto token = read_token_file(cfg.admin.token_file);
    if (!token) {
      log->critical("cannot read admin.token_file {} (or it is empty)", cfg.admin.token_file);
      return kExitConfig;
    }
    sources.token = std::move(*token);
  }
  auto admin = std::make_unique<core::HttpService>(io, "admin",
                                                   std::vector<core::Endpoint>{cfg.admin.listen},
                                                   cfg.admin.allow, make_admin_service(sources));
  MetricsSources measured;
  measured.config = &cfg;
  measured.responder = dns_parts.responder;
  measured.forwarder = dns_parts.forwarder;
  measured.gate = &dns_parts.gate;
  measured.monitor = health_parts.monitor;
  measured.scope = dns_parts.scope.get();
  measured.trust = proxy_parts.trust.get();
  measured.cache = proxy_parts.cache;
  measured.tls = proxy_parts.tls.get();
  measured.resolver = proxy_parts.resolver.get();
  measured.resolver_forwarder = proxy_parts.resolver_forwarder;
  measured.ca_page = proxy_parts.ca_page;
  measured.admin = admin.get();
  register_metrics(metrics, measured);
  services.push_back(std::move(admin));

  try {
    for (auto& service : services) service->start();
  } catch (const std::system_error& e) {
    log->critical("start-up failed: {}", e.what());
    return kExitFailure;
  }

  std::vector<core::Service*> supervised;
  for (auto& service : services) supervised.push_back(service.get());
  // Only a cache hands over.
  std::function<void()> begin_leaving;
  auto handover = core::Duration::zero();
  if (auto* cache = proxy_parts.cache) {
    begin_leaving = [cache] { cache->begin_leaving(); };
    handover = config::handover_or_auto(cfg);
  }
  Supervisor supervisor(io, std::move(supervised), handover, std::move(begin_leaving),
                        options.drain_deadline);
  supervisor.run(thread_count);
  log->info("stopped");
  return 0;
}

}  // namespace pullthrough::app
