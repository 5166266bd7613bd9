#include "app/appliance.hpp"

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <unistd.h>

#include "app/version.hpp"
#include "core/asio.hpp"
#include "core/logging.hpp"
#include "core/service.hpp"
#include "dns/upstreams.hpp"

namespace pullthrough::app {
namespace {

namespace fs = std::filesystem;

std::string join(const std::vector<core::Endpoint>& endpoints) {
  std::string out;
  for (const auto& e : endpoints) out += (out.empty() ? "" : ", ") + e.to_string();
  return out.empty() ? "(none)" : out;
}

std::string join(const std::vector<core::IpAddress>& addresses) {
  std::string out;
  for (const auto& a : addresses) out += (out.empty() ? "" : ", ") + a.to_string();
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
    log.critical("state_dir {} is not writable: {}", path, std::strerror(errno));
    return false;
  }
  log.info("state_dir: {}", fs::absolute(path, ec).lexically_normal().string());
  return true;
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

}  // namespace

int serve(const ServeOptions& options) {
  const auto& cfg = options.config;
  auto log = core::logger("app");
  log->info("pullthrough {} starting: role {}, config {}", version_string(),
            to_string(options.role), options.config_name);

  // A peer that closes its socket must cost an error code, not the process.
  std::signal(SIGPIPE, SIG_IGN);

  if (!prepare_state_dir(cfg.state_dir, *log)) return 1;

  auto host_addresses = core::interface_addresses();
  auto handed_out = appliance_addresses(cfg.appliance, host_addresses);
  bool runs_dns = options.role != Role::proxy;
  bool runs_proxy = options.role != Role::dns;

  std::vector<std::unique_ptr<core::Service>> services;

  if (runs_dns) {
    auto dns_log = core::logger("dns");
    if (handed_out.empty()) {
      dns_log->warn(
          "appliance.addresses: no non-loopback address found; intercepted names "
          "will get empty answers until addresses are configured");
    } else {
      dns_log->info("intercepted names resolve to: {}", join(handed_out));
    }
    auto selection = dns::select_upstreams(cfg.dns, read_text_file("/etc/resolv.conf"),
                                           host_addresses, handed_out);
    for (const auto& error : selection.errors) dns_log->critical("{}", error);
    if (!selection.errors.empty()) return 2;
    for (const auto& dropped : selection.dropped) dns_log->info("not forwarding to {}", dropped);
    if (selection.upstreams.empty()) {
      dns_log->warn(
          "no usable upstream resolver: names that are not intercepted will get "
          "SERVFAIL (set dns.upstreams)");
    } else {
      dns_log->info("forwarding to: {}", join(selection.upstreams));
    }
    dns_log->warn("the DNS responder is not in this build yet: nothing listens on {}",
                  join(cfg.dns.listen));
  }
  if (runs_proxy) {
    core::logger("proxy")->warn(
        "the registry proxy is not in this build yet: nothing listens on {}; {}",
        join(cfg.proxy.listen), join(cfg.proxy.http_listen));
  }

  unsigned thread_count = std::max(1U, std::thread::hardware_concurrency());
  boost::asio::io_context io(static_cast<int>(thread_count));

  try {
    for (auto& service : services) service->start();
  } catch (const std::system_error& e) {
    log->critical("start-up failed: {}", e.what());
    return 1;
  }

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  std::mutex stop_mutex;
  std::condition_variable stop_requested;
  bool stopping = false;
  std::size_t undrained = services.size();

  // Runs on an io_context thread. Once every service has drained, cancelling the signal wait
  // leaves the io_context without work, and the worker threads return.
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
