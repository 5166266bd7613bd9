#include "proxy/registry_cache.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "core/logging.hpp"
#include "core/thread_priority.hpp"
#include "proxy/lifecycle/access_recorder.hpp"
#include "proxy/lifecycle/content_guard.hpp"
#include "proxy/lifecycle/prefetch.hpp"
#include "proxy/lifecycle/retention.hpp"
#include "proxy/local_blob_store.hpp"
#include "proxy/metadata_index.hpp"
#include "proxy/s3_blob_store.hpp"

namespace pullthrough::proxy {
namespace {

// Blocking disk work (fsync of committed blobs) runs here, off the network threads.
constexpr int kDiskThreads = 2;

std::string read_password(const std::string& path, const std::string& registry) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("registry " + registry + ": cannot read password_file " + path);
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string password = text.str();
  // Files written by `echo` end in a newline that is not part of the password.
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  return password;
}

}  // namespace

// Destroyed bottom-up: everything is declared after what it refers to. (The counters, aligned
// to cache lines, come first, which also keeps padding down.)
struct RegistryCache::Parts {
  const config::Config* config = nullptr;
  RegistryCounters counters;
  BlobFetchCounters fetch_counters;
  ManifestCounters manifest_counters;
  core::SystemWallClock wall_clock;
  core::SteadyClock steady_clock;
  std::atomic<bool> leaving{false};
  boost::asio::thread_pool disk{kDiskThreads};
  // Collections and the admin's reports: long, and rarely urgent (see thread_priority.hpp).
  boost::asio::thread_pool background{1};
  std::unique_ptr<MetadataIndex> index;
  std::unique_ptr<BlobStore> store;
  S3BlobStore* bucket = nullptr;  // the store, when it is a bucket
  ContentGuard guard;
  std::unique_ptr<AccessRecorder> recorder;  // writes what is left when it goes: after `disk`
  std::unique_ptr<StorageMonitor> storage;
  std::vector<std::unique_ptr<UpstreamClient>> upstreams;
  std::unique_ptr<BlobFetches> fetches;
  std::unique_ptr<ManifestCache> manifests;
  std::unique_ptr<Retention> retention;
  std::unique_ptr<CachedBlobs> blobs;
  std::unique_ptr<AccessBooks> access;
  std::unique_ptr<Prefetcher> prefetcher;
  std::unique_ptr<RegistryProxy> proxy;
  std::unique_ptr<TlsFrontDoor> front_door;

  ~Parts() {
    background.stop();
    background.join();
    disk.stop();
    disk.join();
  }
};

RegistryCache::RegistryCache(boost::asio::io_context& io, const config::Config& config,
                             ServerTls& tls, core::HostResolver& resolver,
                             const std::vector<core::IpAddress>& own_addresses, ClientTrust* trust)
    : parts_(std::make_unique<Parts>()) {
  auto log = core::logger("proxy");
  auto& p = *parts_;
  p.config = &config;
  if (config.storage.backend == config::StorageBackend::s3) {
    // The index stays on local disk, next to where the filesystem backend keeps its blobs.
    std::filesystem::create_directories(config.storage.path);
    p.index = MetadataIndex::open(config.storage.path + "/metadata.db");
    auto known_size = [index =
                           p.index.get()](std::string_view digest) -> std::optional<std::uint64_t> {
      const std::string name(digest);
      if (auto blob = index->blob(name)) return blob->size;
      if (auto manifest = index->manifest(name)) return manifest->size;
      return std::nullopt;
    };
    auto bucket = std::make_unique<S3BlobStore>(
        config.storage.s3, config.storage.spool, resolver, std::move(known_size),
        std::chrono::duration_cast<std::chrono::milliseconds>(config.health.timeout));
    p.bucket = bucket.get();
    p.store = std::move(bucket);
    log->info("storage: {}, spool at {}", p.bucket->describe(), config.storage.spool);
  } else {
    auto local = std::make_unique<LocalBlobStore>(config.storage.path);
    if (local->leftovers_removed() > 0) {
      log->info("removed {} partial files left by an earlier run", local->leftovers_removed());
    }
    p.store = std::move(local);
    p.index = MetadataIndex::open(config.storage.path + "/metadata.db");
  }
  // Twice per health interval: a store fault (or its end) shows in the next health check, so
  // it reaches the DNS side in about fall (rise) intervals, not one more.
  p.storage = std::make_unique<StorageMonitor>(
      io, p.disk.get_executor(), *p.store, config.storage.min_free,
      std::max(std::chrono::milliseconds(50),
               std::chrono::duration_cast<std::chrono::milliseconds>(config.health.interval) / 2),
      p.wall_clock);

  RegistryProxyParts proxy_parts;
  for (const auto& registry : config.registries) {
    UpstreamSettings settings;
    settings.registry = &registry;
    settings.own_addresses = own_addresses;
    if (registry.credentials) {
      settings.password = read_password(registry.credentials->password_file, registry.host);
    }
    p.upstreams.push_back(
        std::make_unique<UpstreamClient>(io, std::move(settings), resolver, p.steady_clock));
    proxy_parts.upstreams.emplace(&registry, p.upstreams.back().get());
  }
  p.recorder = std::make_unique<AccessRecorder>(*p.index, p.disk.get_executor(), p.wall_clock);
  p.fetches = std::make_unique<BlobFetches>(io, p.disk.get_executor(), *p.store, *p.index, p.guard,
                                            p.wall_clock, p.fetch_counters);
  p.manifests =
      std::make_unique<ManifestCache>(*p.store, *p.index, *p.recorder, p.guard, p.wall_clock,
                                      p.disk.get_executor(), p.manifest_counters);
  p.blobs = std::make_unique<CachedBlobs>(*p.store, *p.index, *p.fetches, *p.recorder, p.guard);
  RetentionSettings retention;
  retention.retention = config.retention;
  retention.max_size = config.storage.max_size;
  retention.low_watermark = config.storage.low_watermark;
  retention.min_free = config.storage.min_free;
  boost::asio::post(p.background, [log] {
    if (auto failed = core::make_this_thread_background(); !failed.empty()) {
      log->warn("collections run at a higher priority than idle: {}", failed);
    } else if (!core::background_can_be_raised()) {
      log->info(
          "a pull that waits for a collection's index transaction cannot raise its "
          "idle thread: that needs CAP_SYS_NICE or an RLIMIT_NICE of 10");
    }
  });
  p.retention = std::make_unique<Retention>(
      io, p.background.get_executor(), *p.index, *p.store, p.guard, p.wall_clock,
      std::move(retention),
      [storage = p.storage.get()] { return storage->last().health.free_bytes; });
  p.retention->on_forget(
      [manifests = p.manifests.get()](const RemovalBatch& removed) { manifests->forget(removed); });
  p.fetches->on_stored(
      [retention = p.retention.get()](std::uint64_t bytes) { retention->stored(bytes); });
  p.manifests->on_stored(
      [retention = p.retention.get()](std::uint64_t bytes) { retention->stored(bytes); });
  p.retention->recover();

  p.access = std::make_unique<AccessBooks>(p.steady_clock, p.index.get());
  p.prefetcher = std::make_unique<Prefetcher>(io, config, proxy_parts.upstreams, *p.manifests,
                                              *p.blobs, *p.access);
  proxy_parts.config = &config;
  proxy_parts.access = p.access.get();
  proxy_parts.blobs = p.blobs.get();
  proxy_parts.manifests = p.manifests.get();
  proxy_parts.counters = &p.counters;
  proxy_parts.storage = p.storage.get();
  proxy_parts.leaving = &p.leaving;
  if (trust != nullptr) proxy_parts.client_events = &trust->events();
  RegistryProxyLimits limits;
  limits.request_timeout = config.proxy.request_timeout;
  limits.write_timeout = config.proxy.write_timeout;
  p.proxy = std::make_unique<RegistryProxy>(std::move(proxy_parts), limits);
  RegistryProxy* proxy = p.proxy.get();
  FrontDoorLimits door_limits;
  door_limits.max_connections = config.proxy.max_connections;
  door_limits.max_connections_per_client = config.proxy.max_connections_per_client;
  p.front_door = std::make_unique<TlsFrontDoor>(
      io, config, tls,
      [proxy](TlsConnection connection) { return proxy->serve(std::move(connection)); },
      door_limits,
      trust == nullptr
          ? UntrustedClientHandler{}
          : UntrustedClientHandler([trust](const core::Endpoint& peer, CertificateAlert alert) {
              trust->untrusted(peer.address, alert);
            }));
  log->info("cache at {}: {} registries", config.storage.path, config.registries.size());
}

RegistryCache::~RegistryCache() = default;

void RegistryCache::begin_leaving() { parts_->leaving.store(true); }

bool RegistryCache::leaving() const { return parts_->leaving.load(); }

void RegistryCache::start() {
  parts_->storage->start();
  parts_->retention->start();
  parts_->prefetcher->start_schedule(parts_->config->prefetch, *parts_->retention,
                                     parts_->wall_clock);
  parts_->front_door->start();
}

void RegistryCache::stop(std::function<void()> drained) {
  Parts* p = parts_.get();
  p->storage->stop();
  p->retention->stop();
  p->prefetcher->stop();
  p->front_door->stop([p, drained = std::move(drained)]() mutable {
    p->fetches->stop([p, drained = std::move(drained)] {
      for (auto& upstream : p->upstreams) upstream->shutdown();
      drained();
    });
  });
}

const std::vector<core::Endpoint>& RegistryCache::bound_endpoints() const {
  return parts_->front_door->bound_endpoints();
}
const RegistryCounters& RegistryCache::counters() const { return parts_->counters; }
const BlobFetchCounters& RegistryCache::fetch_counters() const { return parts_->fetch_counters; }
const ManifestCounters& RegistryCache::manifest_counters() const {
  return parts_->manifest_counters;
}
const UpstreamCounters& RegistryCache::upstream_counters(std::size_t index) const {
  return parts_->upstreams.at(index)->counters();
}
const StorageMonitor& RegistryCache::storage() const { return *parts_->storage; }
const S3BlobStore* RegistryCache::bucket() const { return parts_->bucket; }
Retention& RegistryCache::retention() const { return *parts_->retention; }
Prefetcher& RegistryCache::prefetcher() const { return *parts_->prefetcher; }
std::size_t RegistryCache::open_connections() const {
  return parts_->front_door->open_connections();
}
std::size_t RegistryCache::blob_fetches_in_flight() const { return parts_->fetches->in_flight(); }
const FrontDoorCounters& RegistryCache::front_door_counters() const {
  return parts_->front_door->counters();
}
const core::ListenerCounters& RegistryCache::listener_counters() const {
  return parts_->front_door->listener_counters();
}

}  // namespace pullthrough::proxy
