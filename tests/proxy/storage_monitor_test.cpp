#include "proxy/storage_monitor.hpp"

#include "core/asio.hpp"

#include <filesystem>
#include <thread>

#include <boost/asio/thread_pool.hpp>
#include <gtest/gtest.h>
#include <unistd.h>

#include "proxy/local_blob_store.hpp"
#include "tests/core/eventually.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class StorageMonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::test_directory("storage");
    store_ = std::make_unique<LocalBlobStore>(root_.string());
  }
  void TearDown() override {
    if (monitor_) monitor_->stop();
    work_.reset();
    if (thread_.joinable()) thread_.join();
    disk_.join();
    monitor_.reset();
    fs::remove_all(root_);
  }

  void start(std::uint64_t min_free) {
    monitor_ = std::make_unique<StorageMonitor>(io_, disk_.get_executor(), *store_, min_free, 20ms,
                                                clock_);
    monitor_->start();
    thread_ = std::thread([this] { io_.run(); });
  }

  bool becomes(StoreHealth::Problem expected) const {
    return core::testing::eventually([&] { return monitor_->problem() == expected; });
  }

  fs::path root_;
  std::unique_ptr<LocalBlobStore> store_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  asio::thread_pool disk_{1};
  core::testing::FakeWallClock clock_;
  std::unique_ptr<StorageMonitor> monitor_;
  std::thread thread_;
};

TEST_F(StorageMonitorTest, FirstCheckRunsAtStartSoTheStateIsKnownAtOnce) {
  start(0);
  EXPECT_EQ(monitor_->problem(), StoreHealth::Problem::none);
  auto report = monitor_->last();
  EXPECT_TRUE(report.health.ok());
  EXPECT_EQ(report.checked_at, clock_.now());
  EXPECT_TRUE(report.health.free_bytes);
}

TEST_F(StorageMonitorTest, FollowsTheStoreIntoTroubleAndOut) {
  start(0);
  fs::remove_all(root_ / "tmp");
  ASSERT_TRUE(becomes(StoreHealth::Problem::unwritable));
  EXPECT_NE(monitor_->last().health.reason.find("creating a file in"), std::string::npos);
  fs::create_directories(root_ / "tmp");
  ASSERT_TRUE(becomes(StoreHealth::Problem::none));
  EXPECT_EQ(monitor_->last().health.reason, "");
}

TEST_F(StorageMonitorTest, ReportsAFullStoreAtStart) {
  start(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(monitor_->problem(), StoreHealth::Problem::full);
  EXPECT_EQ(storage_header_value(monitor_->problem()), "full");
}

TEST(StorageHeaderTest, NamesEachProblem) {
  EXPECT_EQ(storage_header_value(StoreHealth::Problem::none), "ok");
  EXPECT_EQ(storage_header_value(StoreHealth::Problem::full), "full");
  EXPECT_EQ(storage_header_value(StoreHealth::Problem::unwritable), "unwritable");
}

}  // namespace
}  // namespace pullthrough::proxy
