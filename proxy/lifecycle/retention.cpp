#include "proxy/lifecycle/retention.hpp"

#include <utility>

#include <algorithm>
#include <span>
#include <stdexcept>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <malloc.h>

#include "core/logging.hpp"
#include "core/spawn.hpp"
#include "core/thread_priority.hpp"
#include "proxy/lifecycle/manifest_references.hpp"
#include "proxy/lifecycle/pin.hpp"

namespace pullthrough::proxy {
namespace {

// A write that crosses a bound starts a collection this soon, so a burst of writes makes one.
constexpr std::chrono::seconds kSoon{1};
// How many removed references a collection logs one by one; the rest are counted.
constexpr std::size_t kLoggedReferences = 20;
constexpr std::size_t kBackfillBatch = 256;

// Eviction for free space starts when it is within 10% of min_free, and frees until it is 20%
// above: a margin, so that the next few writes do not start another at once.
std::uint64_t free_threshold(std::uint64_t min_free) { return min_free + min_free / 10; }
std::uint64_t free_target(std::uint64_t min_free) { return min_free + min_free / 5; }

// The manifest's bytes from the store; empty when they cannot be read. On the calling (background)
// thread, which may block: for S3 the bytes come from the bucket.
std::optional<std::string> read_manifest(BlobStore& store, const std::string& digest,
                                         std::uint64_t size) {
  if (size > std::uint64_t{64} * 1024 * 1024) return std::nullopt;
  return core::run_blocking(store.read_all(digest, size));
}

// Returns what the plan's model freed to the system: planning over a million objects would
// otherwise leave its peak as the process's size for good.
void release_free_memory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

}  // namespace

Retention::Retention(asio::io_context& io, asio::any_io_executor background, MetadataIndex& index,
                     BlobStore& store, ContentGuard& guard, const core::WallClock& clock,
                     RetentionSettings settings,
                     std::function<std::optional<std::uint64_t>()> free_bytes)
    : io_(io),
      strand_(asio::make_strand(std::move(background))),
      index_(index),
      store_(store),
      guard_(guard),
      clock_(clock),
      settings_(std::move(settings)),
      free_bytes_(std::move(free_bytes)),
      log_(core::logger("proxy")),
      interval_timer_(io),
      soon_timer_(io) {}

Retention::~Retention() = default;

void Retention::on_forget(std::function<void(const RemovalBatch&)> forget) {
  forget_ = std::move(forget);
}

void Retention::recover() {
  if (auto finished = Collector::finish_removals(index_, store_); finished > 0) {
    log_->info("finished the removal of {} objects an interrupted collection had begun", finished);
  }
  std::size_t read = 0;
  for (;;) {
    auto batch = index_.manifests_without_contents(kBackfillBatch);
    if (batch.empty()) break;
    for (const auto& digest : batch) {
      std::vector<std::string> contents;
      auto record = index_.manifest(digest);
      std::optional<std::string> body;
      if (record) body = read_manifest(store_, digest, record->size);
      std::string error;
      auto references = body ? manifest_references(record->media_type, *body, error)
                             : std::optional<ManifestReferences>();
      if (references) {
        contents = std::move(references->manifests);
        contents.insert(contents.end(), references->blobs.begin(), references->blobs.end());
        if (!references->subject.empty()) contents.push_back(references->subject);
      } else {
        // Unreadable: nothing it references is kept for it (it is fetched again when asked).
        log_->warn("manifest {}: cannot read what it references ({})", digest,
                   body ? error : "its bytes are not in the store");
      }
      index_.set_contents(digest, contents);
      ++read;
    }
  }
  if (read > 0)
    log_->info("read the references of {} manifests stored by an earlier version", read);
  stored_bytes_ = index_.total_bytes();
  std::lock_guard lock(status_mutex_);
  status_.stored_bytes = stored_bytes_;
}

void Retention::start() {
  stopped_ = false;
  if (!settings_.retention.rules.empty() || settings_.max_size > 0 || settings_.min_free > 0) {
    schedule(std::chrono::duration_cast<std::chrono::milliseconds>(settings_.retention.interval));
  }
  // A store already over its bound at start is brought under it now, not after an interval.
  stored(0);
}

void Retention::stop() {
  stopped_ = true;
  asio::post(io_, [this] {
    interval_timer_.cancel();
    soon_timer_.cancel();
  });
}

void Retention::schedule(std::chrono::milliseconds after) {
  interval_timer_.expires_after(after);
  interval_timer_.async_wait([this](const error_code& ec) {
    if (ec || stopped_) return;
    asio::post(strand_, [this] {
      run(false, std::nullopt);
      if (!stopped_) {
        asio::post(io_, [this] {
          schedule(
              std::chrono::duration_cast<std::chrono::milliseconds>(settings_.retention.interval));
        });
      }
    });
  });
}

void Retention::stored(std::uint64_t bytes) {
  const auto total = stored_bytes_ += bytes;
  bool over = settings_.max_size > 0 && total > settings_.max_size;
  bool low = false;
  if (settings_.min_free > 0 && free_bytes_) {
    auto free = free_bytes_();
    low = free && *free < free_threshold(settings_.min_free);
  }
  if (over || low) collect_soon();
}

void Retention::collect_soon() {
  if (stopped_ || soon_pending_.exchange(true)) return;
  asio::post(io_, [this] {
    soon_timer_.expires_after(kSoon);
    soon_timer_.async_wait([this](const error_code& ec) {
      if (ec || stopped_) {
        soon_pending_ = false;
        return;
      }
      asio::post(strand_, [this] {
        // Writes from here on may trigger the next one.
        soon_pending_ = false;
        run(false, std::nullopt);
      });
    });
  });
}

RetentionPolicy Retention::policy() const {
  RetentionPolicy policy;
  policy.rules = settings_.retention.rules;
  policy.max_size = settings_.max_size;
  policy.low_watermark = settings_.low_watermark;
  return policy;
}

CollectionOutcome Retention::run(bool dry_run, const std::optional<std::string>& ref) {
  CollectionOutcome out;
  out.dry_run = dry_run;
  const auto started = std::chrono::steady_clock::now();
  const UnixSeconds now = unix_seconds(clock_);
  RetentionPolicy policy = this->policy();
  if (!ref && settings_.min_free > 0) {
    // Measured now, on this thread: the monitor's figure may predate the last removal.
    auto health = store_.check_health(0);
    if (health.free_bytes && *health.free_bytes < free_threshold(settings_.min_free)) {
      policy.free_up = free_target(settings_.min_free) - *health.free_bytes;
    }
  }
  // Over the size bound, or short of free space: the store must come down even while the proxy
  // keeps every CPU busy, so this collection does not wait for idle ones.
  std::optional<core::RaisedPriority> urgent;
  if (!ref &&
      (policy.free_up > 0 || (settings_.max_size > 0 && stored_bytes_ > settings_.max_size))) {
    urgent.emplace();
  }
  if (!dry_run) guard_.begin_collection();
  try {
    {
      auto snapshot = index_.snapshot();
      if (ref) {
        std::string error;
        out.plan = Collector::plan_removal(*snapshot, *ref, error);
        if (!error.empty()) {
          if (!dry_run) guard_.end_collection();
          throw std::invalid_argument(error);
        }
      } else {
        out.plan = Collector::plan(*snapshot, policy, now);
      }
    }
    release_free_memory();
    if (!dry_run && out.plan.blocked.empty()) {
      out.applied = Collector::apply(out.plan, index_, store_, guard_, now, forget_);
    }
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  if (!dry_run) guard_.end_collection();
  out.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  if (dry_run) return out;

  counters_.collections.add();
  if (!out.error.empty()) counters_.collection_failures.add();
  for (std::size_t i = 0; i < out.plan.references.size() && out.applied.references_removed > 0;
       ++i) {
    const auto& removal = out.plan.references[i];
    if (removal.implied) continue;
    switch (removal.cause) {
      case RemovalCause::expired:
        counters_.references_expired.add();
        break;
      case RemovalCause::too_many_tags:
        counters_.references_over_keep_tags.add();
        break;
      case RemovalCause::evicted:
        counters_.references_evicted.add();
        break;
      case RemovalCause::requested:
        counters_.references_requested.add();
        break;
    }
    if (i < kLoggedReferences) {
      log_->info("removed {} ({}): {}", removal.ref(), to_string(removal.cause), removal.reason);
    }
  }
  counters_.objects_removed.add(out.applied.objects_removed);
  counters_.objects_busy.add(out.applied.objects_busy);
  counters_.bytes_freed.add(out.applied.bytes_freed);

  std::uint64_t total = stored_bytes_;
  try {
    total = index_.total_bytes();
    stored_bytes_ = total;
  } catch (const std::exception& e) {
    log_->error("reading the store's size: {}", e.what());
  }
  if (!out.error.empty()) {
    log_->error("collection failed after {} ms: {}", out.took.count(), out.error);
  } else if (!out.plan.blocked.empty()) {
    log_->warn("collection skipped: {}", out.plan.blocked);
  } else if (out.applied.references_removed > 0 || out.applied.objects_removed > 0) {
    log_->info(
        "collection in {} ms: {} references and {} objects ({} bytes) removed, {} left in use; "
        "the store holds {} bytes",
        out.took.count(), out.applied.references_removed, out.applied.objects_removed,
        out.applied.bytes_freed, out.applied.objects_busy, total);
  }
  if (out.plan.shortfall > 0) {
    log_->warn(
        "the store cannot come down to its bound: {} bytes more are pinned or kept "
        "forever",
        out.plan.shortfall);
  }
  std::lock_guard lock(status_mutex_);
  status_.stored_bytes = total;
  if (!ref) status_.pinned_bytes = out.plan.pinned_bytes;
  status_.last_collection = clock_.now();
  status_.last_took = out.took;
  status_.last_error = out.error;
  return out;
}

RetentionStatus Retention::status() const {
  std::lock_guard lock(status_mutex_);
  RetentionStatus status = status_;
  status.stored_bytes = stored_bytes_;
  return status;
}

template <typename Work>
auto Retention::on_strand(Work work) -> asio::awaitable<decltype(work())> {
  using Result = decltype(work());
  auto job = [work = std::move(work)]() -> asio::awaitable<Result> { co_return work(); };
  co_return co_await asio::co_spawn(strand_, std::move(job), asio::use_awaitable);
}

// Each job is named before the co_await: g++ 12 mishandles temporaries in a co_await's
// full-expression.
asio::awaitable<std::string> Retention::format(std::function<std::string()> work) {
  co_return co_await on_strand(std::move(work));
}

asio::awaitable<CollectionOutcome> Retention::collect(bool dry_run) {
  auto work = [this, dry_run] { return run(dry_run, std::nullopt); };
  co_return co_await on_strand(std::move(work));
}

asio::awaitable<CollectionOutcome> Retention::remove(std::string ref, bool dry_run) {
  auto work = [this, ref = std::move(ref), dry_run] { return run(dry_run, ref); };
  co_return co_await on_strand(std::move(work));
}

asio::awaitable<std::vector<ReferenceReport>> Retention::references(std::string glob) {
  auto work = [this, glob = std::move(glob)] {
    std::string error;
    auto report =
        Collector::references(*index_.snapshot(), policy(), unix_seconds(clock_), glob, error);
    if (!error.empty()) throw std::invalid_argument(error);
    return report;
  };
  co_return co_await on_strand(std::move(work));
}

asio::awaitable<UsageReport> Retention::usage() {
  auto work = [this] {
    return Collector::usage(*index_.snapshot(), policy(), unix_seconds(clock_));
  };
  co_return co_await on_strand(std::move(work));
}

asio::awaitable<bool> Retention::pin(std::string ref, UnixSeconds expires_at, std::string source) {
  std::string error;
  if (!PinPattern::parse(ref, error)) throw std::invalid_argument(error);
  auto work = [this, ref = std::move(ref), expires_at, source = std::move(source)] {
    return index_.put_pin(PinRecord{ref, unix_seconds(clock_), expires_at, source});
  };
  co_return co_await on_strand(std::move(work));
}

asio::awaitable<bool> Retention::unpin(std::string ref) {
  auto work = [this, ref = std::move(ref)] { return index_.remove_pin(ref); };
  co_return co_await on_strand(std::move(work));
}

asio::awaitable<std::vector<PinRecord>> Retention::pins() {
  auto work = [this] { return index_.pins(); };
  co_return co_await on_strand(std::move(work));
}

}  // namespace pullthrough::proxy
