// Keeps the cache within its rules and its disk: runs a collection (collector.hpp) every
// retention.interval, within about a second of a write that takes the store above
// storage.max_size or its disk's free space within 10% of storage.min_free, and when the admin
// asks (`pullthrough cache gc`). It also answers the admin's questions about the cache (`cache ls`,
// `du`) and keeps the pins.
//
// Everything that touches the index in bulk runs on one strand of `background` (in the appliance
// a thread of its own at a lower priority: core/thread_priority.hpp), one job at a time: two
// collections never overlap, and none ever runs on a network thread or takes the CPU from one.
#pragma once

#include "core/asio.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/logger.h>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/counters.hpp"
#include "proxy/blob_store.hpp"
#include "proxy/lifecycle/collector.hpp"
#include "proxy/lifecycle/content_guard.hpp"
#include "proxy/metadata_index.hpp"

namespace pullthrough::proxy {

#define PULLTHROUGH_RETENTION_COUNTERS(COUNTER)                                               \
  COUNTER(collections, "collections run (interval, size bound, free space or cache gc)")      \
  COUNTER(collection_failures, "collections stopped by an index or store error")              \
  COUNTER(references_expired, "references removed: unused for longer than their rule allows") \
  COUNTER(references_over_keep_tags, "tags removed beyond their rule's keep_tags")            \
  COUNTER(references_evicted, "references evicted for storage.max_size or storage.min_free")  \
  COUNTER(references_requested, "references removed by cache rm")                             \
  COUNTER(objects_removed, "blobs and manifests removed")                                     \
  COUNTER(objects_busy, "objects a collection left because a client or a fetch used them")    \
  COUNTER(bytes_freed, "bytes of blobs and manifests removed")

struct RetentionCounters {
  PULLTHROUGH_RETENTION_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_RETENTION_COUNTERS)
};

struct RetentionSettings {
  config::RetentionConfig retention;
  std::uint64_t max_size = 0;  // 0: no bound
  std::uint64_t low_watermark = 0;
  std::uint64_t min_free = 0;
};

// What a collection (or `cache rm`) did, or with dry_run would do.
struct CollectionOutcome {
  bool dry_run = false;
  CollectionPlan plan;
  Collector::Applied applied;
  std::chrono::milliseconds took{0};
  std::string error;  // the collection stopped on it (an index or store error)
};

// What the last collection left, for /metrics and /healthz.
struct RetentionStatus {
  std::uint64_t stored_bytes = 0;
  std::uint64_t pinned_bytes = 0;
  std::optional<core::SystemTime> last_collection;
  std::chrono::milliseconds last_took{0};
  std::string last_error;
};

class Retention {
 public:
  // Everything given must outlive this; `background` must be stopped and joined before it goes.
  // `free_bytes` says the store's free space as last measured (empty when unknown).
  Retention(boost::asio::io_context& io, boost::asio::any_io_executor background,
            MetadataIndex& index, BlobStore& store, ContentGuard& guard,
            const core::WallClock& clock, RetentionSettings settings,
            std::function<std::optional<std::uint64_t>()> free_bytes = {});
  ~Retention();
  Retention(const Retention&) = delete;
  Retention& operator=(const Retention&) = delete;

  // Told of removed objects (see Collector::apply); set before start().
  void on_forget(std::function<void(const RemovalBatch&)> forget);

  // On the caller's thread, before the cache serves: finishes the removals a crash left
  // (Collector::finish_removals) and reads what each manifest stored by an older version
  // references. Throws what the index throws.
  void recover();
  void start();
  void stop();

  // A blob or manifest of `bytes` was stored. Thread-safe and cheap.
  void stored(std::uint64_t bytes);

  // Admin requests, each run on the strand after the job before it.
  boost::asio::awaitable<CollectionOutcome> collect(bool dry_run);
  boost::asio::awaitable<CollectionOutcome> remove(std::string ref, bool dry_run);
  // Throws std::invalid_argument for a glob that does not compile.
  boost::asio::awaitable<std::vector<ReferenceReport>> references(std::string glob);
  boost::asio::awaitable<UsageReport> usage();
  // Throws std::invalid_argument for a reference that is not a pin pattern (pin.hpp). True when
  // the pin is new (pin) or was there (unpin).
  boost::asio::awaitable<bool> pin(std::string ref, UnixSeconds expires_at, std::string source);
  boost::asio::awaitable<bool> unpin(std::string ref);
  boost::asio::awaitable<std::vector<PinRecord>> pins();
  // Runs `work` on the strand after the jobs before it, off the network threads: for answers
  // too large to format on one (a collection can name a million objects).
  boost::asio::awaitable<std::string> format(std::function<std::string()> work);

  const RetentionSettings& settings() const { return settings_; }
  RetentionStatus status() const;
  const RetentionCounters& counters() const { return counters_; }

 private:
  RetentionPolicy policy() const;
  // On the strand.
  CollectionOutcome run(bool dry_run, const std::optional<std::string>& ref);
  void schedule(std::chrono::milliseconds after);
  void collect_soon();
  template <typename Work>
  auto on_strand(Work work) -> boost::asio::awaitable<decltype(work())>;

  boost::asio::io_context& io_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  MetadataIndex& index_;
  BlobStore& store_;
  ContentGuard& guard_;
  const core::WallClock& clock_;
  const RetentionSettings settings_;
  std::function<std::optional<std::uint64_t>()> free_bytes_;
  std::function<void(const RemovalBatch&)> forget_;
  std::shared_ptr<spdlog::logger> log_;
  RetentionCounters counters_;

  boost::asio::steady_timer interval_timer_;
  boost::asio::steady_timer soon_timer_;
  std::atomic<bool> soon_pending_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<std::uint64_t> stored_bytes_{0};
  mutable std::mutex status_mutex_;
  RetentionStatus status_;
};

}  // namespace pullthrough::proxy
