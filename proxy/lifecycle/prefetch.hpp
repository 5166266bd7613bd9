// `pullthrough prefetch`: images pulled into the cache ahead of need, through the cache's own
// fetch path (manifests through the manifest cache, blobs through the coalesced blob fetches,
// with the appliance's credentials), so what a prefetch stores is exactly what a client's pull
// would have stored, verified the same way, and counts as used when fetched.
//
// A prefetch is a job: started by the admin listener, run on the network threads, and asked for
// its progress (each layer's bytes) until it is done. The last kMaxJobs jobs are remembered.
#pragma once

#include "core/asio.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include "config/config.hpp"
#include "config/platform.hpp"
#include "proxy/api/access_check.hpp"
#include "proxy/cached_blobs.hpp"
#include "proxy/lifecycle/retention.hpp"
#include "proxy/manifest_cache.hpp"

namespace pullthrough::proxy {

using config::PlatformFilter;

// One entry of an index: the child manifest and the platform it is for.
struct IndexChild {
  std::string digest;
  std::string platform;  // os/arch[/variant], or "unknown" when the entry has none
};

// The children of an image index (or Docker manifest list) `body`, in order; nothing for what is
// not an index.
std::optional<std::vector<IndexChild>> index_children(std::string_view body);
// Whether `filter` picks a child for `platform`; without a variant, any variant of the
// architecture (linux/arm64 takes linux/arm64/v8).
bool matches(const PlatformFilter& filter, std::string_view platform);

// The blobs an image manifest `body` names (config, then layers), with their sizes.
struct BlobDescriptor {
  std::string digest;
  std::uint64_t size = 0;
};
std::optional<std::vector<BlobDescriptor>> image_blobs(std::string_view body);

struct PrefetchBlobStatus {
  std::string digest;
  std::uint64_t size = 0;
  std::uint64_t fetched = 0;
  std::string state;  // "cached", "fetching", "fetched", "failed"
  std::string error;
};

struct PrefetchRefStatus {
  std::string ref;
  std::string state;  // "waiting", "resolving", "fetching", "done", "failed"
  std::string error;
  std::string digest;                  // the manifest the reference names
  std::vector<std::string> platforms;  // the index children fetched
  std::vector<PrefetchBlobStatus> blobs;
};

struct PrefetchStatus {
  std::uint64_t id = 0;
  bool done = false;
  std::vector<PrefetchRefStatus> refs;
};

class Prefetcher {
 public:
  static constexpr std::size_t kMaxJobs = 16;
  static constexpr std::size_t kMaxRefs = 1000;

  // Everything given must outlive the prefetcher and its jobs (the io_context's run). `access`
  // learns whether each prefetched repository is public, as a client's first pull would teach
  // it, so that what was prefetched is served while upstream is down.
  Prefetcher(boost::asio::io_context& io, const config::Config& config,
             std::unordered_map<const config::RegistryConfig*, RegistryUpstream*> upstreams,
             ManifestCache& manifests, CachedBlobs& blobs, AccessBooks& access);
  ~Prefetcher();

  // Starts a job for `refs` (host/repository[:tag] or host/repository@digest; no tag means
  // latest), fetching the children of an index that one of `platforms` picks, and returns its
  // id. A reference that does not parse fails within the job, with the reason. With
  // `pin_until`, what each reference named is pinned until then (the configuration's refresh).
  // Throws std::invalid_argument for no references, more than kMaxRefs, or no platform.
  std::uint64_t start(std::vector<std::string> refs, std::vector<PlatformFilter> platforms,
                      UnixSeconds pin_until = 0);
  std::optional<PrefetchStatus> status(std::uint64_t id) const;

  // The configuration's `prefetch`: a job for its refs now and every interval, each pinning what
  // it fetched until an interval and a half later (past the next refresh, which renews it).
  void start_schedule(const config::PrefetchConfig& prefetch, Retention& retention,
                      const core::WallClock& clock);
  void stop();

 private:
  struct Job;
  boost::asio::awaitable<void> run(std::shared_ptr<Job> job);
  boost::asio::awaitable<void> fetch_ref(Job& job, std::size_t index);

  void schedule(std::chrono::milliseconds after);

  boost::asio::io_context& io_;
  const config::Config& config_;
  std::unordered_map<const config::RegistryConfig*, RegistryUpstream*> upstreams_;
  ManifestCache& manifests_;
  CachedBlobs& blobs_;
  AccessBooks& access_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex mutex_;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::shared_ptr<Job>> jobs_;
  // The schedule, once started.
  const config::PrefetchConfig* schedule_ = nullptr;
  Retention* retention_ = nullptr;
  const core::WallClock* clock_ = nullptr;
  std::unique_ptr<boost::asio::steady_timer> timer_;
};

}  // namespace pullthrough::proxy
