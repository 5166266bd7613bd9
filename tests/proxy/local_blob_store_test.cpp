#include "proxy/local_blob_store.hpp"

#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/digester.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy {
namespace {

namespace fs = std::filesystem;

std::vector<std::uint8_t> bytes_of(std::string_view text) { return {text.begin(), text.end()}; }

using testing::sha256_of;

std::string read_all(BlobReader& reader) {
  std::string out;
  std::vector<std::uint8_t> buffer(7);  // small, to exercise offsets
  for (std::uint64_t offset = 0;;) {
    auto n = reader.read(offset, buffer);
    if (n == 0) return out;
    out.append(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
    offset += n;
  }
}

class LocalBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing::test_directory("blobs"); }
  void TearDown() override { fs::remove_all(root_); }
  std::size_t temp_files() const {
    auto tmp = root_ / "tmp";
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(tmp), {}));
  }
  fs::path root_;
};

TEST(DigesterTest, KnownSha256AndSha512) {
  EXPECT_EQ(sha256_of("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Digester d("sha512");
  d.update(bytes_of("abc"));
  EXPECT_EQ(d.finish().substr(0, 23), "sha512:ddaf35a193617aba");
  EXPECT_THROW(Digester("md5"), std::invalid_argument);
}

TEST_F(LocalBlobStoreTest, StoresAVerifiedBlobAndReadsItBack) {
  LocalBlobStore store(root_.string());
  std::string content = "layer bytes, layer bytes";
  auto digest = sha256_of(content);
  EXPECT_FALSE(store.size(digest));
  EXPECT_EQ(store.open(digest), nullptr);
  auto writer = store.create(digest, content.size());
  writer->write(bytes_of(content.substr(0, 5)));
  writer->write(bytes_of(content.substr(5)));
  EXPECT_EQ(writer->written(), content.size());
  auto result = writer->commit();
  EXPECT_EQ(result.status, CommitStatus::stored) << result.error;
  EXPECT_EQ(result.actual_digest, digest);
  EXPECT_EQ(store.size(digest), content.size());
  auto reader = store.open(digest);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(read_all(*reader), content);
  EXPECT_EQ(temp_files(), 0U);
  auto hex = digest.substr(7);
  EXPECT_TRUE(fs::is_regular_file(root_ / "blobs" / "sha256" / hex.substr(0, 2) / hex));
}

// Acceptance: nothing unverified is ever stored or served under the digest it claimed.
TEST_F(LocalBlobStoreTest, CreatesMissingParentDirectories) {
  auto nested = root_ / "not" / "there" / "yet";
  LocalBlobStore store(nested.string());
  EXPECT_TRUE(fs::is_directory(nested / "blobs"));
  EXPECT_TRUE(fs::is_directory(nested / "tmp"));
  EXPECT_EQ(fs::status(nested).permissions() & fs::perms::all, fs::perms::owner_all);
}

TEST_F(LocalBlobStoreTest, DigestMismatchIsNeverStored) {
  LocalBlobStore store(root_.string());
  auto digest = sha256_of("the real layer");
  auto writer = store.create(digest, std::nullopt);
  writer->write(bytes_of("a corrupted layer"));
  auto result = writer->commit();
  EXPECT_EQ(result.status, CommitStatus::digest_mismatch);
  EXPECT_EQ(result.actual_digest, sha256_of("a corrupted layer"));
  writer.reset();
  EXPECT_FALSE(store.size(digest));
  EXPECT_EQ(store.open(digest), nullptr);
  EXPECT_EQ(temp_files(), 0U);
}

TEST_F(LocalBlobStoreTest, SizeMismatchIsNeverStored) {
  LocalBlobStore store(root_.string());
  std::string content = "short";
  auto digest = sha256_of(content);
  auto writer = store.create(digest, 6);  // the descriptor said 6
  writer->write(bytes_of(content));
  EXPECT_EQ(writer->commit().status, CommitStatus::size_mismatch);
  writer.reset();
  EXPECT_FALSE(store.size(digest));
  EXPECT_EQ(temp_files(), 0U);
}

TEST_F(LocalBlobStoreTest, AbandonedWriterLeavesNothing) {
  LocalBlobStore store(root_.string());
  auto digest = sha256_of("never finished");
  {
    auto writer = store.create(digest, std::nullopt);
    writer->write(bytes_of("never"));
    EXPECT_EQ(temp_files(), 1U);
  }
  EXPECT_EQ(temp_files(), 0U);
  EXPECT_FALSE(store.size(digest));
}

// Followers of a fetch in progress read the growing temp file, and keep reading after commit.
TEST_F(LocalBlobStoreTest, ReaderFollowsAWriteInProgress) {
  LocalBlobStore store(root_.string());
  std::string content = "first part|second part";
  auto digest = sha256_of(content);
  auto writer = store.create(digest, content.size());
  writer->write(bytes_of("first part|"));
  auto follower = writer->reader();
  std::vector<std::uint8_t> buffer(64);
  auto n = follower->read(0, buffer);
  EXPECT_EQ(std::string(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n)),
            "first part|");
  EXPECT_EQ(follower->read(n, buffer), 0U);  // nothing more yet
  writer->write(bytes_of("second part"));
  ASSERT_EQ(writer->commit().status, CommitStatus::stored);
  writer.reset();
  EXPECT_EQ(read_all(*follower), content);
}

TEST_F(LocalBlobStoreTest, SurvivesARestartAndRemovesCrashLeftovers) {
  std::string content = "kept across restarts";
  auto digest = sha256_of(content);
  {
    LocalBlobStore store(root_.string());
    auto writer = store.create(digest, std::nullopt);
    writer->write(bytes_of(content));
    ASSERT_EQ(writer->commit().status, CommitStatus::stored);
  }
  // A fetch the process was killed in the middle of.
  std::ofstream(root_ / "tmp" / "123.part") << "half a layer";
  LocalBlobStore again(root_.string());
  EXPECT_EQ(again.leftovers_removed(), 1U);
  EXPECT_EQ(temp_files(), 0U);
  auto reader = again.open(digest);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(read_all(*reader), content);
  EXPECT_TRUE(again.remove(digest));
  EXPECT_FALSE(again.remove(digest));
  EXPECT_FALSE(again.size(digest));
}

// Traversal: a digest that is not sha256/sha512 hex never becomes a path.
TEST_F(LocalBlobStoreTest, TraversalInADigestIsRefused) {
  LocalBlobStore store(root_.string());
  for (const char* bad :
       {"sha256:../../../etc/passwd", "sha256:/etc/passwd", "../blobs", "sha256:ABCDEF", ""}) {
    EXPECT_THROW(store.size(bad), std::invalid_argument) << bad;
    EXPECT_THROW(store.open(bad), std::invalid_argument) << bad;
    EXPECT_THROW(store.create(bad, std::nullopt), std::invalid_argument) << bad;
  }
}

// A full disk: the write fails with an error, and the writer leaves nothing behind. Simulated
// with a file size limit in a child process, so the test needs no special file system.
TEST_F(LocalBlobStoreTest, FullDiskFailsTheWriteAndLeavesNothing) {
  LocalBlobStore store(root_.string());
  std::string content(64 * 1024, 'x');
  auto digest = sha256_of(content);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of a signal
    rlimit limit{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    bool threw = false;
    {
      auto writer = store.create(digest, content.size());
      try {
        writer->write(bytes_of(content));
      } catch (const std::system_error&) {
        threw = true;
      }
    }
    ::_exit(threw && temp_files() == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(store.size(digest));
}

TEST_F(LocalBlobStoreTest, HealthyStoreReportsFreeSpaceAndLeavesNoProbeBehind) {
  LocalBlobStore store(root_.string());
  auto health = store.check_health(0);
  EXPECT_TRUE(health.ok()) << health.reason;
  EXPECT_EQ(health.reason, "");
  ASSERT_TRUE(health.free_bytes);
  ASSERT_TRUE(health.total_bytes);
  EXPECT_GT(*health.free_bytes, 0U);
  EXPECT_GE(*health.total_bytes, *health.free_bytes);
  EXPECT_EQ(temp_files(), 0U);
}

TEST_F(LocalBlobStoreTest, FreeSpaceBelowMinFreeIsFull) {
  LocalBlobStore store(root_.string());
  auto health = store.check_health(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(health.problem, StoreHealth::Problem::full);
  EXPECT_NE(health.reason.find("below storage.min_free"), std::string::npos) << health.reason;
  EXPECT_EQ(temp_files(), 0U);
}

TEST_F(LocalBlobStoreTest, StoreWhoseDirectoryIsGoneIsUnwritable) {
  LocalBlobStore store(root_.string());
  fs::remove_all(root_ / "tmp");
  auto health = store.check_health(0);
  EXPECT_EQ(health.problem, StoreHealth::Problem::unwritable);
  EXPECT_NE(health.reason.find("creating a file in"), std::string::npos) << health.reason;
  EXPECT_NE(health.reason.find("No such file or directory"), std::string::npos) << health.reason;
}

// A write the file system cannot take whole is a full store. Simulated, as above, with a file
// size limit in a child process.
TEST_F(LocalBlobStoreTest, ProbeWriteCutShortIsAFullStore) {
  LocalBlobStore store(root_.string());
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{1024, 1024};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    auto health = store.check_health(0);
    ::_exit(health.problem == StoreHealth::Problem::full && temp_files() == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace pullthrough::proxy
