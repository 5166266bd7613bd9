// What the access check knows of repositories across a restart: the index's answers, read once.
#include <chrono>
#include <filesystem>
#include <memory>

#include <gtest/gtest.h>

#include "proxy/api/access_check.hpp"
#include "proxy/metadata_index.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy {
namespace {

using std::chrono::minutes;

UnixSeconds wall_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class AccessBooksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::test_directory("access-books");
    std::filesystem::create_directories(dir_);
    index_ = MetadataIndex::open((dir_ / "metadata.db").string());
  }
  void TearDown() override {
    index_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<MetadataIndex> index_;
  core::testing::FakeClock clock_;
};

TEST_F(AccessBooksTest, AnAnswerFromTheIndexIsAsFreshAsItsCheckAndIsReadOnce) {
  index_->put_visibility("quay.io", "org/app", true, wall_now() - 60);
  AccessBooks books(clock_, index_.get());
  auto known = books.visibility("quay.io", "org/app", minutes(5));
  EXPECT_EQ(known.visibility, Visibility::public_repository);
  EXPECT_TRUE(known.fresh);
  // Remembered: what the index says now is not read again.
  index_->put_visibility("quay.io", "org/app", false, wall_now());
  EXPECT_EQ(books.visibility("quay.io", "org/app", minutes(5)).visibility,
            Visibility::public_repository);
  // Checked a minute before the restart: due again four minutes after it, not five.
  clock_.advance(minutes(4) - std::chrono::seconds(5));
  EXPECT_TRUE(books.visibility("quay.io", "org/app", minutes(5)).fresh);
  clock_.advance(std::chrono::seconds(10));
  known = books.visibility("quay.io", "org/app", minutes(5));
  EXPECT_EQ(known.visibility, Visibility::public_repository);
  EXPECT_FALSE(known.fresh);
}

TEST_F(AccessBooksTest, AnOldAnswerFromTheIndexStandsButIsNotFresh) {
  index_->put_visibility("quay.io", "org/private", false, wall_now() - 3600);
  AccessBooks books(clock_, index_.get());
  auto known = books.visibility("quay.io", "org/private", minutes(5));
  EXPECT_EQ(known.visibility, Visibility::restricted);
  EXPECT_FALSE(known.fresh);
  EXPECT_EQ(books.visibility("quay.io", "org/other", minutes(5)).visibility, Visibility::unknown);
}

}  // namespace
}  // namespace pullthrough::proxy
