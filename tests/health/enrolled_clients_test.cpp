#include "health/enrolled_clients.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

namespace pullthrough::health {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

class EnrolledClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pullthrough-enrolled-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = dir_ / "enrolled-clients";
  }
  void TearDown() override {
    ::chmod(dir_.c_str(), 0755);
    fs::remove_all(dir_);
  }
  std::string file_text() const {
    std::ifstream in(path_);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  fs::path dir_;
  fs::path path_;
  core::SystemTime t0_ = core::SystemTime(std::chrono::seconds(1'800'000'000));
};

TEST_F(EnrolledClientsTest, AMissingFileIsAnEmptySet) {
  std::vector<std::string> problems;
  auto set = EnrolledClients::load(path_, problems);
  EXPECT_EQ(set.size(), 0U);
  EXPECT_TRUE(problems.empty());
}

TEST_F(EnrolledClientsTest, TheSetSurvivesARestart) {
  {
    std::vector<std::string> problems;
    auto set = EnrolledClients::load(path_, problems);
    std::string error;
    ASSERT_TRUE(set.add(ip("10.0.0.5"), t0_, "enroll", error)) << error;
    ASSERT_TRUE(set.add(ip("::ffff:10.0.0.6"), t0_ + std::chrono::seconds(1), "admin", error));
    ASSERT_TRUE(set.add(ip("fd00::7"), t0_ + std::chrono::seconds(2), "enroll", error));
    bool removed = false;
    ASSERT_TRUE(set.remove(ip("fd00::7"), removed, error));
    EXPECT_TRUE(removed);
  }
  std::vector<std::string> problems;
  auto again = EnrolledClients::load(path_, problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(again.size(), 2U);
  EXPECT_TRUE(again.contains(ip("10.0.0.5")));
  EXPECT_TRUE(again.contains(ip("10.0.0.6")));
  EXPECT_FALSE(again.contains(ip("fd00::7")));
  auto list = again.list();
  EXPECT_EQ(list[0].client, ip("10.0.0.5"));
  EXPECT_EQ(list[0].since, t0_);
  EXPECT_EQ(list[0].via, "enroll");
  EXPECT_EQ(list[1].via, "admin");
  EXPECT_THAT(file_text(), HasSubstr("10.0.0.6 2027-01-15T08:00:01.000Z admin\n"));
  EXPECT_FALSE(fs::exists(path_.string() + ".tmp"));
}

TEST_F(EnrolledClientsTest, AddingTwiceWritesNothing) {
  EnrolledClients set(path_);
  std::string error;
  ASSERT_TRUE(set.add(ip("10.0.0.5"), t0_, "enroll", error));
  fs::remove(path_);
  ASSERT_TRUE(set.add(ip("10.0.0.5"), t0_ + std::chrono::hours(1), "enroll", error));
  EXPECT_FALSE(fs::exists(path_));
  EXPECT_EQ(set.list().at(0).since, t0_);
}

TEST_F(EnrolledClientsTest, BadLinesAreSkippedWithFileAndLine) {
  {
    std::ofstream out(path_);
    out << "# comment\n"
           "10.0.0.5 2027-01-15T08:00:00.000Z enroll\n"
           "10.0.0.999 2027-01-15T08:00:00.000Z enroll\n"
           "10.0.0.6 yesterday enroll\n"
           "10.0.0.7 2027-01-15T08:00:00Z\n"
           "10.0.0.8 2027-01-15T08:00:00Z admin extra\n"
           "10.0.0.9 2027-01-15T08:00:00Z Bad$Word\n"
           "\n"
           "fd00::1 2027-01-15T08:00:00Z admin\n";
  }
  std::vector<std::string> problems;
  auto set = EnrolledClients::load(path_, problems);
  EXPECT_EQ(set.size(), 2U);
  EXPECT_TRUE(set.contains(ip("fd00::1")));
  ASSERT_EQ(problems.size(), 5U);
  EXPECT_THAT(problems[0], HasSubstr("enrolled-clients:3: not an IP address: 10.0.0.999"));
  EXPECT_THAT(problems[1], HasSubstr(":4: not an RFC 3339 UTC time"));
  EXPECT_THAT(problems[2], HasSubstr(":5: expected"));
  EXPECT_THAT(problems[3], HasSubstr(":6: expected"));
  EXPECT_THAT(problems[4], HasSubstr(":7: not a word"));
}

TEST_F(EnrolledClientsTest, AnUnwritableDirectoryLeavesTheSetAsItWasAndSaysWhy) {
  if (::geteuid() == 0) {
    // root writes anyway: make the temporary file's name a directory instead.
    fs::create_directories(path_.string() + ".tmp");
  } else {
    ::chmod(dir_.c_str(), 0555);
  }
  EnrolledClients set(path_);
  std::string error;
  EXPECT_FALSE(set.add(ip("10.0.0.5"), t0_, "enroll", error));
  EXPECT_THAT(error, HasSubstr("enrolled-clients.tmp"));
  EXPECT_FALSE(set.contains(ip("10.0.0.5")));
  EXPECT_EQ(set.size(), 0U);
}

}  // namespace
}  // namespace pullthrough::health
