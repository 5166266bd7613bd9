// Watches whether the cache's store can take new blobs: every interval, on the disk pool, a probe
// write and a free-space check (BlobStore::check_health). The result travels three ways: in the
// `Pullthrough-Storage` header of every `GET /v2/`, which is what the DNS side's health check
// reads over the network (so a cache with a full disk is taken out of DNS answers, in one process
// or across machines); in /healthz; and in /metrics.
#pragma once

#include "core/asio.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include "core/clock.hpp"
#include "proxy/blob_store.hpp"

namespace pullthrough::proxy {

// What `GET /v2/` says about the store, in its health::kStorageHeader header.
std::string_view storage_header_value(StoreHealth::Problem problem);

struct StorageReport {
  StoreHealth health;
  core::WallClock::TimePoint checked_at{};
  std::chrono::milliseconds took{0};
};

class StorageMonitor {
 public:
  // `store` and `clock` must outlive every check in flight: the owner joins the disk pool before
  // destroying them.
  StorageMonitor(boost::asio::io_context& io, boost::asio::any_io_executor disk, BlobStore& store,
                 std::uint64_t min_free, std::chrono::milliseconds interval,
                 const core::WallClock& clock);
  ~StorageMonitor();
  StorageMonitor(const StorageMonitor&) = delete;
  StorageMonitor& operator=(const StorageMonitor&) = delete;

  // Checks once on the calling thread (start-up may block), then every interval on the pool.
  void start();
  void stop();

  // Cheap, from any thread: for the /v2/ header on every request.
  StoreHealth::Problem problem() const;
  // The last full report, from any thread.
  StorageReport last() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pullthrough::proxy
