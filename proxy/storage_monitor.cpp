#include "proxy/storage_monitor.hpp"

#include "core/asio.hpp"

#include <mutex>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/logging.hpp"
#include "health/protocol.hpp"

namespace pullthrough::proxy {

std::string_view storage_header_value(StoreHealth::Problem problem) {
  switch (problem) {
    case StoreHealth::Problem::none:
      return health::kStorageOk;
    case StoreHealth::Problem::full:
      return "full";
    case StoreHealth::Problem::unwritable:
      return "unwritable";
  }
  return "unwritable";
}

// Shared with the timer and with checks still running on the disk pool, which may finish after
// stop(): they find `stopped` set and do nothing more.
struct StorageMonitor::State : std::enable_shared_from_this<State> {
  State(asio::io_context& io, asio::any_io_executor disk_executor, BlobStore& blob_store,
        std::uint64_t min_free_bytes, std::chrono::milliseconds check_interval,
        const core::WallClock& wall_clock)
      : timer(io),
        disk(std::move(disk_executor)),
        store(blob_store),
        min_free(min_free_bytes),
        interval(check_interval),
        clock(wall_clock),
        log(core::logger("storage")) {}

  // Runs on the disk pool (or the starting thread).
  void check() {
    auto began = std::chrono::steady_clock::now();
    StorageReport report;
    try {
      report.health = store.check_health(min_free);
    } catch (const std::exception& e) {
      report.health.problem = StoreHealth::Problem::unwritable;
      report.health.reason = e.what();
    }
    report.checked_at = clock.now();
    report.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - began);
    publish(std::move(report));
  }

  // The report is in place before the problem changes: whoever reads problem() and then last()
  // sees a report at least as new.
  void publish(StorageReport report) {
    const StoreHealth health = report.health;
    {
      std::lock_guard lock(mutex);
      last = std::move(report);
    }
    StoreHealth::Problem before = problem.exchange(health.problem);
    // Logged when the state changes; the first check has nothing to change from and speaks only
    // of trouble.
    bool changed = first ? !health.ok() : before != health.problem;
    first = false;
    if (changed && health.ok()) {
      log->info("storage healthy again: new blobs can be stored");
    } else if (changed) {
      log->warn("storage unhealthy ({}): {}", storage_header_value(health.problem), health.reason);
    }
  }

  // Runs on the io_context, which owns the timer; the check itself runs on the disk pool.
  void schedule() {
    timer.expires_after(interval);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      asio::post(self->disk, [self] {
        if (self->stopped) return;
        self->check();
        asio::post(self->timer.get_executor(), [self] {
          if (!self->stopped) self->schedule();
        });
      });
    });
  }

  asio::steady_timer timer;
  asio::any_io_executor disk;
  BlobStore& store;
  std::uint64_t min_free;
  std::chrono::milliseconds interval;
  const core::WallClock& clock;
  std::shared_ptr<spdlog::logger> log;
  std::atomic<bool> stopped{false};
  std::atomic<StoreHealth::Problem> problem{StoreHealth::Problem::none};
  bool first = true;  // only checks touch it, and they never overlap
  mutable std::mutex mutex;
  StorageReport last;
};

StorageMonitor::StorageMonitor(asio::io_context& io, asio::any_io_executor disk, BlobStore& store,
                               std::uint64_t min_free, std::chrono::milliseconds interval,
                               const core::WallClock& clock)
    : state_(std::make_shared<State>(io, std::move(disk), store, min_free, interval, clock)) {}

StorageMonitor::~StorageMonitor() { state_->stopped = true; }

void StorageMonitor::start() {
  state_->check();
  state_->schedule();
}

void StorageMonitor::stop() {
  state_->stopped = true;
  // The timer belongs to the io_context: cancel it there, not from a foreign thread.
  asio::post(state_->timer.get_executor(), [state = state_] { state->timer.cancel(); });
}

StoreHealth::Problem StorageMonitor::problem() const { return state_->problem.load(); }

StorageReport StorageMonitor::last() const {
  std::lock_guard lock(state_->mutex);
  return state_->last;
}

}  // namespace pullthrough::proxy
