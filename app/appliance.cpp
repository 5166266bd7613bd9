#include "app/appliance.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include "app/version.hpp"
#include "certs/ca_page.hpp"
#include "certs/configured_ca.hpp"
#include "certs/front_door.hpp"
#include "certs/leaf_store.hpp"
#include "certs/server_tls.hpp"
#include "core/http_service.hpp"
#include "core/logging.hpp"
#include "core/service.hpp"
#include "dns/address_resolver.hpp"
#include "dns/forwarder.hpp"
#include "dns/health_gate.hpp"
#include "dns/responder.hpp"
#include "dns/upstreams.hpp"
#include "proxy/registry_cache.hpp"

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

std::string_view signal_name(int signal_number) {
  switch (signal_number) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal";
  }
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

std::vector<std::string> intercepted_names(const config::Config& cfg) {
  std::vector<std::string> names;
  for (const auto& registry : cfg.registries) {
    names.push_back(registry.host);
    names.insert(names.end(), registry.aliases.begin(), registry.aliases.end());
  }
  return names;
}

// Tracks the worker threads so that the supervisor can wait for them with a deadline.
class WorkerPool {
 public:
  void start(boost::asio::io_context& io, unsigned count) {
    running_ = count;
    for (unsigned i = 0; i < count; ++i) {
      threads_.emplace_back([this, &io] {
        io.run();
        std::lock_guard lock(mutex_);
        if (--running_ == 0) done_.notify_all();
      });
    }
  }

  // True when every thread returned from run() in time.
  bool wait_for(std::chrono::milliseconds deadline) {
    std::unique_lock lock(mutex_);
    return done_.wait_for(lock, deadline, [this] { return running_ == 0; });
  }

  void join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  unsigned running_ = 0;
  std::vector<std::thread> threads_;
};

// Everything the proxy role runs on: the CA, its leaves and the TLS configuration, and the
// resolver it reaches upstream registries with. Built before the services that refer to it and
// destroyed after them.
struct ProxyParts {
  std::optional<certs::CertificateAuthority> ca;
  std::unique_ptr<certs::LeafStore> leaves;
  std::unique_ptr<certs::ServerTls> tls;
  core::SteadyClock clock;
  std::unique_ptr<dns::Upstream> resolvers;
  std::unique_ptr<dns::AddressResolver> resolver;
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
  if (selection.upstreams.empty()) {
    log->warn(
        "no usable resolver for upstream registries: cache misses will fail (set "
        "dns.upstreams)");
    parts.resolvers = std::make_unique<dns::NoUpstream>();
  } else {
    try {
      parts.resolvers = std::make_unique<dns::Forwarder>(
          io, selection.upstreams,
          std::chrono::duration_cast<std::chrono::milliseconds>(cfg.dns.upstream_timeout));
    } catch (const std::exception& e) {
      log->critical("cannot start the upstream resolver: {}", e.what());
      return kExitFailure;
    }
    log->info("upstream registries are resolved through: {}", join(selection.upstreams));
  }
  parts.resolver = std::make_unique<dns::AddressResolver>(io, *parts.resolvers, parts.clock);
  return std::nullopt;
}

// Returns an exit status on failure.
std::optional<int> build_proxy(const config::Config& cfg, boost::asio::io_context& io,
                               bool dns_listens, ProxyParts& parts,
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
  auto names = intercepted_names(cfg);
  try {
    // Issued now rather than at the first handshake: a problem shows at start, and no client
    // waits for a key to be generated.
    for (const auto& name : names) parts.leaves->get(name, now);
  } catch (const certs::CaError& e) {
    log->critical("cannot issue certificates: {}", e.what());
    return kExitFailure;
  }
  log->info("certificates ready for {} intercepted names", names.size());
  parts.tls = std::make_unique<certs::ServerTls>(
      *parts.leaves, [&cfg](std::string_view name) { return cfg.find_registry(name) != nullptr; });
  if (auto failed = build_upstream_resolver(cfg, io, dns_listens, parts)) return *failed;
  try {
    services.push_back(std::make_unique<proxy::RegistryCache>(
        io, cfg, *parts.tls, *parts.resolver, own_addresses(cfg, core::interface_addresses())));
  } catch (const std::exception& e) {
    core::logger("proxy")->critical("cannot open the cache: {}", e.what());
    return kExitFailure;
  }
  if (!cfg.proxy.http_listen.empty()) {
    services.push_back(
        std::make_unique<core::HttpService>(io, "ca-page", cfg.proxy.http_listen, cfg.proxy.allow,
                                            certs::make_ca_page_handler(*parts.ca, names)));
  }
  return std::nullopt;
}

// Everything the DNS role runs on. Built before the responder that refers to it and destroyed
// after it.
struct DnsParts {
  core::SteadyClock clock;
  dns::SwitchableHealthGate gate;
  std::unique_ptr<dns::Upstream> upstream;
  std::vector<core::IpAddress> handed_out;
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
  if (selection.upstreams.empty()) {
    log->warn(
        "no usable upstream resolver: names that are not intercepted will get "
        "SERVFAIL (set dns.upstreams)");
    parts.upstream = std::make_unique<dns::NoUpstream>();
  } else {
    log->info("forwarding to: {}", join(selection.upstreams));
    try {
      parts.upstream = std::make_unique<dns::Forwarder>(
          io, selection.upstreams,
          std::chrono::duration_cast<std::chrono::milliseconds>(cfg.dns.upstream_timeout));
    } catch (const std::exception& e) {
      log->critical("cannot start the forwarder: {}", e.what());
      return kExitFailure;
    }
  }
  services.push_back(
      std::make_unique<dns::Responder>(io, cfg, parts.gate, *parts.upstream, parts.clock));
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
  boost::asio::io_context io(static_cast<int>(thread_count));
  ProxyParts proxy_parts;
  DnsParts dns_parts;
  std::vector<std::unique_ptr<core::Service>> services;

  if (options.role != Role::proxy) {
    if (auto failed = build_dns(cfg, io, dns_parts, services)) return *failed;
  }
  if (options.role != Role::dns) {
    bool dns_listens = options.role == Role::all;
    if (auto failed = build_proxy(cfg, io, dns_listens, proxy_parts, services)) return *failed;
  }

  try {
    for (auto& service : services) service->start();
  } catch (const std::system_error& e) {
    log->critical("start-up failed: {}", e.what());
    return kExitFailure;
  }
  if (options.role == Role::all && !dns_parts.handed_out.empty()) {
    // Until the health monitor lands, the cache in this very process counts as healthy once its
    // listeners are up. With --role dns nothing vouches for a cache, so the gate stays closed and
    // every name is forwarded.
    dns_parts.gate.set(dns_parts.handed_out);
    core::logger("dns")->info("rewriting intercepted names to the local cache");
  } else if (options.role == Role::dns) {
    core::logger("dns")->warn(
        "no health monitor in this build: intercepted names are forwarded, not rewritten");
  }

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  std::mutex stop_mutex;
  std::condition_variable stop_requested;
  bool stopping = false;
  std::size_t undrained = services.size();

  // Runs on any thread. Once every service has drained, cancelling the signal wait leaves the
  // io_context without work, and the worker threads return.
  auto service_drained = [&] {
    boost::asio::post(io, [&] {
      if (--undrained == 0) signals.cancel();
    });
  };
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal_number) {
        if (ec) return;  // cancelled: drained
        std::lock_guard lock(stop_mutex);
        if (stopping) {
          log->warn("second {} received: stopping without waiting", signal_name(signal_number));
          io.stop();
          return;
        }
        log->info("{} received: closing listeners and draining (deadline {})",
                  signal_name(signal_number), core::format_duration(options.drain_deadline));
        stopping = true;
        stop_requested.notify_all();
        if (services.empty()) return;
        signals.async_wait(on_signal);  // a second signal cuts the drain short
        for (auto& service : services) service->stop(service_drained);
      };
  signals.async_wait(on_signal);

  WorkerPool pool;
  pool.start(io, thread_count);
  log->info("ready: {} worker threads", thread_count);

  {
    std::unique_lock lock(stop_mutex);
    stop_requested.wait(lock, [&] { return stopping; });
  }
  if (!pool.wait_for(options.drain_deadline)) {
    log->warn("drain deadline passed; abandoning work still in flight");
    io.stop();
  }
  pool.join();
  log->info("stopped");
  return 0;
}

}  // namespace pullthrough::app
