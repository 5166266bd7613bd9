#include "proxy/lifecycle/access_recorder.hpp"

#include "core/asio.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "proxy/metadata_index.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy {
namespace {

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');
const std::string kC = "sha256:" + std::string(64, 'c');

// The disk pool is an io_context that runs only when the test says, so a test sees exactly what
// was written on the caller's thread (nothing) and what the pool wrote.
class AccessRecorderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::test_directory("access-recorder");
    std::filesystem::create_directories(root_);
    index_ = MetadataIndex::open((root_ / "metadata.db").string());
    for (const auto& digest : {kA, kB, kC}) index_->put_blob(digest, 10, stored_at_);
    recorder_ = std::make_unique<AccessRecorder>(*index_, disk_.get_executor(), clock_);
  }

  void TearDown() override {
    recorder_.reset();
    index_.reset();
    std::filesystem::remove_all(root_);
  }

  UnixSeconds now() const { return unix_seconds(clock_); }
  UnixSeconds last_access(const std::string& digest) const {
    auto record = index_->blob(digest);
    return record ? record->last_access : -1;
  }
  // Runs what was posted to the disk pool; how many handlers that was.
  std::size_t run_disk() {
    disk_.restart();
    return disk_.run();
  }

  std::filesystem::path root_;
  core::testing::FakeWallClock clock_;
  const UnixSeconds stored_at_ = unix_seconds(clock_) - 3600;
  asio::io_context disk_;
  std::unique_ptr<MetadataIndex> index_;
  std::unique_ptr<AccessRecorder> recorder_;
};

TEST_F(AccessRecorderTest, AHitIsWrittenByTheDiskPoolNotOnTheCallersThread) {
  recorder_->blob(kA);
  EXPECT_EQ(recorder_->pending(), 1U);
  EXPECT_EQ(last_access(kA), stored_at_);  // nothing written yet
  EXPECT_EQ(run_disk(), 1U);
  EXPECT_EQ(last_access(kA), now());
  EXPECT_EQ(recorder_->pending(), 0U);
}

TEST_F(AccessRecorderTest, HitsThatArriveBeforeTheWriteGoInOneWrite) {
  recorder_->blob(kA);
  recorder_->blob(kB);
  clock_.advance(std::chrono::seconds(5));
  recorder_->blob(kC);
  EXPECT_EQ(recorder_->pending(), 3U);
  EXPECT_EQ(run_disk(), 1U);  // one write posted for the three
  EXPECT_EQ(last_access(kA), now() - 5);
  EXPECT_EQ(last_access(kB), now() - 5);
  EXPECT_EQ(last_access(kC), now());
}

TEST_F(AccessRecorderTest, AnObjectIsWrittenAtMostOncePerGranularity) {
  recorder_->blob(kA);
  run_disk();
  const UnixSeconds first = now();
  clock_.advance(AccessRecorder::kGranularity - std::chrono::seconds(1));
  recorder_->blob(kA);
  EXPECT_EQ(recorder_->pending(), 0U);
  EXPECT_EQ(run_disk(), 0U);
  EXPECT_EQ(last_access(kA), first);
  clock_.advance(std::chrono::seconds(1));
  recorder_->blob(kA);
  EXPECT_EQ(recorder_->pending(), 1U);
  run_disk();
  EXPECT_EQ(last_access(kA), first + AccessRecorder::kGranularity.count());
}

TEST_F(AccessRecorderTest, AClockSteppedBackIsNotedButNeverMovesTheLastUseBack) {
  recorder_->blob(kA);
  run_disk();
  const UnixSeconds first = now();
  clock_.advance(-std::chrono::seconds(600));
  recorder_->blob(kA);
  EXPECT_EQ(recorder_->pending(), 1U);
  run_disk();
  EXPECT_EQ(last_access(kA), first);
}

TEST_F(AccessRecorderTest, WhatIsWaitingIsWrittenWhenTheRecorderGoes) {
  recorder_->blob(kB);
  recorder_.reset();  // the disk pool never ran
  EXPECT_EQ(last_access(kB), now());
  EXPECT_EQ(run_disk(), 1U);  // the write posted earlier finds nothing to do and ends
}

TEST_F(AccessRecorderTest, FlushWritesOnTheCallersThreadAndThePostedWriteFindsNothing) {
  recorder_->blob(kC);
  recorder_->flush();
  EXPECT_EQ(last_access(kC), now());
  EXPECT_EQ(recorder_->pending(), 0U);
  EXPECT_EQ(run_disk(), 1U);
  // After the flush a new hit posts a write again.
  clock_.advance(AccessRecorder::kGranularity);
  recorder_->blob(kC);
  EXPECT_EQ(run_disk(), 1U);
  EXPECT_EQ(last_access(kC), now());
}

}  // namespace
}  // namespace pullthrough::proxy
