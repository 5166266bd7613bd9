#include "proxy/metadata_index.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace pullthrough::proxy {
namespace {

using Strings = std::vector<std::string>;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// What open() throws for `path`; empty if it opened.
std::string open_error(const std::string& path) {
  try {
    MetadataIndex::open(path);
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

const std::string kDigestA =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kDigestB =
    "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const std::string kDockerHub = "registry-1.docker.io";
const std::string kQuay = "quay.io";
const std::string kIndexMediaType = "application/vnd.oci.image.index.v1+json";

// Each test gets its own directory, so databases and their -wal/-shm companions never meet.
class MetadataIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::path(::testing::TempDir()) / "metadata_index_XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string db_path() const { return (dir_ / "index.db").string(); }
  std::unique_ptr<MetadataIndex> open_index() const { return MetadataIndex::open(db_path()); }

  // Runs one statement on a plain connection, as another tool (or a newer build) would.
  void exec_raw(const std::string& sql) const {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string message = error != nullptr ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message;
  }

  std::string pragma_raw(const std::string& name) const {
    sqlite3* db = nullptr;
    sqlite3_stmt* stmt = nullptr;
    std::string value;
    if (sqlite3_open(db_path().c_str(), &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, ("PRAGMA " + name).c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
  }

  std::filesystem::path dir_;
};

TEST_F(MetadataIndexTest, UnknownKeysAreEmpty) {
  auto index = open_index();
  EXPECT_FALSE(index->tag(kDockerHub, "library/alpine", "latest"));
  EXPECT_TRUE(index->tags(kDockerHub, "library/alpine").empty());
  EXPECT_FALSE(index->manifest(kDigestA));
  EXPECT_FALSE(index->blob(kDigestA));
  EXPECT_FALSE(index->linked(kDockerHub, "library/alpine", kDigestA));
  EXPECT_TRUE(index->least_recently_used(10).empty());
  EXPECT_EQ(index->total_blob_bytes(), 0U);
}

TEST_F(MetadataIndexTest, PutAndGetTag) {
  auto index = open_index();
  index->put_tag(kDockerHub, "library/alpine", "3.19", kDigestA, 1'700'000'000);
  auto record = index->tag(kDockerHub, "library/alpine", "3.19");
  ASSERT_TRUE(record);
  EXPECT_EQ(record->digest, kDigestA);
  EXPECT_EQ(record->confirmed_at, 1'700'000'000);
}

TEST_F(MetadataIndexTest, OverwritingTagReplacesDigestAndTime) {
  auto index = open_index();
  index->put_tag(kDockerHub, "library/alpine", "latest", kDigestA, 100);
  index->put_tag(kDockerHub, "library/alpine", "latest", kDigestB, 200);
  auto record = index->tag(kDockerHub, "library/alpine", "latest");
  ASSERT_TRUE(record);
  EXPECT_EQ(record->digest, kDigestB);
  EXPECT_EQ(record->confirmed_at, 200);
  EXPECT_EQ(index->tags(kDockerHub, "library/alpine"), (Strings{"latest"}));
}

TEST_F(MetadataIndexTest, TagsAreSortedAndScopedPerRepository) {
  auto index = open_index();
  for (const char* tag : {"latest", "3.19", "edge", "3.2", "Z"}) {
    index->put_tag(kDockerHub, "library/alpine", tag, kDigestA, 1);
  }
  index->put_tag(kDockerHub, "library/busybox", "musl", kDigestA, 1);
  index->put_tag(kQuay, "library/alpine", "quay-only", kDigestB, 1);

  // Byte order: digits, then upper case, then lower case.
  EXPECT_EQ(index->tags(kDockerHub, "library/alpine"),
            (Strings{"3.19", "3.2", "Z", "edge", "latest"}));
  EXPECT_EQ(index->tags(kDockerHub, "library/busybox"), (Strings{"musl"}));
  EXPECT_EQ(index->tags(kQuay, "library/alpine"), (Strings{"quay-only"}));
  EXPECT_TRUE(index->tags(kQuay, "library/busybox").empty());
  EXPECT_FALSE(index->tag(kQuay, "library/alpine", "latest"));
  // A repository name that is a prefix of another does not match it.
  EXPECT_TRUE(index->tags(kDockerHub, "library/alp").empty());
}

TEST_F(MetadataIndexTest, ManifestRecord) {
  auto index = open_index();
  index->put_manifest(kDigestA, kIndexMediaType, 1609);
  auto record = index->manifest(kDigestA);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->media_type, kIndexMediaType);
  EXPECT_EQ(record->size, 1609U);
  EXPECT_FALSE(index->manifest(kDigestB));

  index->put_manifest(kDigestA, "application/vnd.docker.distribution.manifest.list.v2+json", 1700);
  record = index->manifest(kDigestA);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->media_type, "application/vnd.docker.distribution.manifest.list.v2+json");
  EXPECT_EQ(record->size, 1700U);
}

TEST_F(MetadataIndexTest, BlobPutTouchForget) {
  auto index = open_index();
  index->put_blob(kDigestA, 3'000'000, 1000);
  auto record = index->blob(kDigestA);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->size, 3'000'000U);
  EXPECT_EQ(record->stored_at, 1000);
  EXPECT_EQ(record->last_access, 1000);

  index->touch_blob(kDigestA, 1500);
  record = index->blob(kDigestA);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->stored_at, 1000);
  EXPECT_EQ(record->last_access, 1500);

  index->touch_blob(kDigestB, 1500);  // unknown: no row appears
  EXPECT_FALSE(index->blob(kDigestB));

  index->forget_blob(kDigestA);
  EXPECT_FALSE(index->blob(kDigestA));
  index->forget_blob(kDigestA);  // forgetting twice is harmless
}

TEST_F(MetadataIndexTest, RePutBlobKeepsStoredAtAndUpdatesSizeAndAccess) {
  auto index = open_index();
  index->put_blob(kDigestA, 10, 1000);
  index->put_blob(kDigestA, 12, 2000);
  auto record = index->blob(kDigestA);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->size, 12U);
  EXPECT_EQ(record->stored_at, 1000);
  EXPECT_EQ(record->last_access, 2000);
}

TEST_F(MetadataIndexTest, LastAccessNeverMovesBackwards) {
  auto index = open_index();
  index->put_blob(kDigestA, 10, 1000);
  index->touch_blob(kDigestA, 3000);
  index->touch_blob(kDigestA, 2000);  // a request that started earlier finishing later
  index->put_blob(kDigestA, 10, 2500);
  auto record = index->blob(kDigestA);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->last_access, 3000);
}

// The access recorder's batch: each as touch_blob would, in one transaction.
TEST_F(MetadataIndexTest, TouchBlobsAppliesEachAsTouchBlobWould) {
  auto index = open_index();
  index->put_blob(kDigestA, 10, 1000);
  index->put_blob(kDigestB, 10, 5000);
  index->touch_blobs({{kDigestA, 3000}, {kDigestB, 4000}, {"sha256:unknown", 9000}});
  EXPECT_EQ(index->blob(kDigestA)->last_access, 3000);
  EXPECT_EQ(index->blob(kDigestB)->last_access, 5000);  // older than what it had: kept
  EXPECT_FALSE(index->blob("sha256:unknown"));
  index->touch_blobs({});
  EXPECT_EQ(index->blob(kDigestA)->last_access, 3000);
}

TEST_F(MetadataIndexTest, LeastRecentlyUsedOrderAndLimit) {
  auto index = open_index();
  index->put_blob("sha256:c", 3, 300);
  index->put_blob("sha256:a", 1, 100);
  index->put_blob("sha256:d", 4, 400);
  index->put_blob("sha256:b", 2, 200);
  index->touch_blob("sha256:a", 500);   // now the most recent
  index->put_blob("sha256:e", 5, 200);  // same access time as b: digest breaks the tie

  auto all = index->least_recently_used(100);
  ASSERT_EQ(all.size(), 5U);
  std::vector<std::string> order;
  for (const auto& [digest, record] : all) order.push_back(digest);
  EXPECT_EQ(order, (Strings{"sha256:b", "sha256:e", "sha256:c", "sha256:d", "sha256:a"}));
  EXPECT_EQ(all[0].second.size, 2U);
  EXPECT_EQ(all[0].second.stored_at, 200);
  EXPECT_EQ(all[4].second.stored_at, 100);
  EXPECT_EQ(all[4].second.last_access, 500);

  auto two = index->least_recently_used(2);
  ASSERT_EQ(two.size(), 2U);
  EXPECT_EQ(two[0].first, "sha256:b");
  EXPECT_EQ(two[1].first, "sha256:e");
  EXPECT_TRUE(index->least_recently_used(0).empty());
  EXPECT_EQ(index->least_recently_used(std::numeric_limits<std::size_t>::max()).size(), 5U);
}

TEST_F(MetadataIndexTest, TotalBlobBytes) {
  auto index = open_index();
  index->put_blob(kDigestA, 5'000'000'000, 1);  // past 32 bits
  index->put_blob(kDigestB, 7, 1);
  EXPECT_EQ(index->total_blob_bytes(), 5'000'000'007U);
  index->put_blob(kDigestB, 8, 2);
  EXPECT_EQ(index->total_blob_bytes(), 5'000'000'008U);
  index->forget_blob(kDigestA);
  EXPECT_EQ(index->total_blob_bytes(), 8U);
  // Manifests are not blobs.
  index->put_manifest("sha256:m", kIndexMediaType, 1000);
  EXPECT_EQ(index->total_blob_bytes(), 8U);
}

TEST_F(MetadataIndexTest, SizeBeyondSignedRangeIsRefused) {
  auto index = open_index();
  const std::uint64_t huge = std::numeric_limits<std::uint64_t>::max();
  EXPECT_THROW(index->put_blob(kDigestA, huge, 1), std::runtime_error);
  EXPECT_THROW(index->put_manifest(kDigestA, kIndexMediaType, huge), std::runtime_error);
  EXPECT_FALSE(index->blob(kDigestA));
  EXPECT_FALSE(index->manifest(kDigestA));
  // The cached statements are usable after the throw.
  index->put_blob(kDigestA, 1, 1);
  EXPECT_TRUE(index->blob(kDigestA));
}

TEST_F(MetadataIndexTest, LinkIsIdempotentAndScoped) {
  auto index = open_index();
  index->link(kDockerHub, "library/alpine", kDigestA);
  index->link(kDockerHub, "library/alpine", kDigestA);
  EXPECT_TRUE(index->linked(kDockerHub, "library/alpine", kDigestA));
  EXPECT_FALSE(index->linked(kDockerHub, "library/alpine", kDigestB));
  EXPECT_FALSE(index->linked(kDockerHub, "library/busybox", kDigestA));
  EXPECT_FALSE(index->linked(kQuay, "library/alpine", kDigestA));

  // Forgetting the blob's bytes does not forget that the repository referenced it.
  index->put_blob(kDigestA, 1, 1);
  index->forget_blob(kDigestA);
  EXPECT_TRUE(index->linked(kDockerHub, "library/alpine", kDigestA));
}

TEST_F(MetadataIndexTest, TagMappingSurvivesReopen) {
  {
    auto index = open_index();
    index->put_tag(kDockerHub, "library/alpine", "latest", kDigestA, 1234);
    index->put_manifest(kDigestA, kIndexMediaType, 99);
    index->put_blob(kDigestB, 42, 10);
    index->touch_blob(kDigestB, 20);
    index->link(kDockerHub, "library/alpine", kDigestB);
  }
  auto index = open_index();
  auto tag = index->tag(kDockerHub, "library/alpine", "latest");
  ASSERT_TRUE(tag);
  EXPECT_EQ(tag->digest, kDigestA);
  EXPECT_EQ(tag->confirmed_at, 1234);
  auto manifest = index->manifest(kDigestA);
  ASSERT_TRUE(manifest);
  EXPECT_EQ(manifest->media_type, kIndexMediaType);
  EXPECT_EQ(manifest->size, 99U);
  auto blob = index->blob(kDigestB);
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->size, 42U);
  EXPECT_EQ(blob->stored_at, 10);
  EXPECT_EQ(blob->last_access, 20);
  EXPECT_TRUE(index->linked(kDockerHub, "library/alpine", kDigestB));
}

TEST_F(MetadataIndexTest, NewDatabaseUsesWalAndSchemaVersionFour) {
  open_index();
  EXPECT_EQ(pragma_raw("journal_mode"), "wal");
  EXPECT_EQ(pragma_raw("user_version"), "4");
}

TEST_F(MetadataIndexTest, VisibilityIsKeptPerRepositoryAndOverwritten) {
  {
    auto index = open_index();
    EXPECT_FALSE(index->visibility(kDockerHub, "library/alpine"));
    index->put_visibility(kDockerHub, "library/alpine", true, 100);
    index->put_visibility(kDockerHub, "org/private", false, 200);
    index->put_visibility(kDockerHub, "org/private", true, 300);
  }
  auto index = open_index();  // kept across a restart
  auto alpine = index->visibility(kDockerHub, "library/alpine");
  ASSERT_TRUE(alpine);
  EXPECT_TRUE(alpine->is_public);
  EXPECT_EQ(alpine->checked_at, 100);
  auto moved = index->visibility(kDockerHub, "org/private");
  ASSERT_TRUE(moved);
  EXPECT_TRUE(moved->is_public);
  EXPECT_EQ(moved->checked_at, 300);
  EXPECT_FALSE(index->visibility("quay.io", "library/alpine"));
}

TEST_F(MetadataIndexTest, ABaseAnswerKeepsItsChallengesInOrder) {
  const std::vector<std::string> challenges = {
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io")",
      R"(Basic realm="x")"};
  {
    auto index = open_index();
    EXPECT_FALSE(index->base_answer(kDockerHub));
    index->put_base_answer(kDockerHub, BaseAnswerRecord{401, challenges, 77});
    index->put_base_answer("quay.io", BaseAnswerRecord{200, {}, 78});
    EXPECT_THROW(index->put_base_answer("ghcr.io", BaseAnswerRecord{401, {"a\nb"}, 1}),
                 std::runtime_error);
  }
  auto index = open_index();
  auto hub = index->base_answer(kDockerHub);
  ASSERT_TRUE(hub);
  EXPECT_EQ(hub->status, 401U);
  EXPECT_EQ(hub->challenges, challenges);
  EXPECT_EQ(hub->seen_at, 77);
  auto quay = index->base_answer("quay.io");
  ASSERT_TRUE(quay);
  EXPECT_EQ(quay->status, 200U);
  EXPECT_TRUE(quay->challenges.empty());
  EXPECT_FALSE(index->base_answer("ghcr.io"));
}

TEST_F(MetadataIndexTest, ATagHasAMappingPerSetOfAcceptedTypes) {
  auto index = open_index();
  const ManifestTypeSet oci_manifest_only = 0b0100;
  index->put_tag(kDockerHub, "library/alpine", "latest", kDigestA, 100);
  index->put_tag(kDockerHub, "library/alpine", "latest", kDigestB, 200, oci_manifest_only);
  EXPECT_EQ(index->tag(kDockerHub, "library/alpine", "latest")->digest, kDigestA);
  auto narrow = index->tag(kDockerHub, "library/alpine", "latest", oci_manifest_only);
  ASSERT_TRUE(narrow);
  EXPECT_EQ(narrow->digest, kDigestB);
  EXPECT_EQ(narrow->confirmed_at, 200);
  EXPECT_FALSE(index->tag(kDockerHub, "library/alpine", "latest", 0b0001));
  EXPECT_EQ(index->tags(kDockerHub, "library/alpine"), (Strings{"latest"}));
  EXPECT_THROW(index->put_tag(kDockerHub, "library/alpine", "x", kDigestA, 1, 0),
               std::runtime_error);
}

// A cache written by the previous build keeps its tags: they were all made with every type.
TEST_F(MetadataIndexTest, SchemaVersionOneIsMigratedWithItsTags) {
  exec_raw(
      "CREATE TABLE tags (registry TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, "
      "digest TEXT NOT NULL, confirmed_at INTEGER NOT NULL, "
      "PRIMARY KEY (registry, repository, tag)) STRICT, WITHOUT ROWID;"
      "CREATE TABLE manifests (digest TEXT NOT NULL PRIMARY KEY, media_type TEXT NOT NULL, "
      "size INTEGER NOT NULL CHECK (size >= 0)) STRICT, WITHOUT ROWID;"
      "CREATE TABLE blobs (digest TEXT NOT NULL PRIMARY KEY, size INTEGER NOT NULL CHECK "
      "(size >= 0), stored_at INTEGER NOT NULL, last_access INTEGER NOT NULL) STRICT, WITHOUT "
      "ROWID;"
      "CREATE INDEX blobs_by_last_access ON blobs (last_access, digest);"
      "CREATE TABLE links (registry TEXT NOT NULL, repository TEXT NOT NULL, digest TEXT NOT "
      "NULL, PRIMARY KEY (registry, repository, digest)) STRICT, WITHOUT ROWID;"
      "CREATE INDEX links_by_digest ON links (digest);"
      "INSERT INTO tags VALUES ('" +
      kDockerHub + "', 'library/alpine', 'latest', '" + kDigestA +
      "', 1234);"
      "INSERT INTO manifests VALUES ('" +
      kDigestA + "', '" + kIndexMediaType +
      "', 300);"
      "INSERT INTO links VALUES ('" +
      kDockerHub + "', 'library/alpine', '" + kDigestA +
      "');"
      "PRAGMA user_version = 1;");
  const auto before = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  {
    auto index = open_index();
    auto tag = index->tag(kDockerHub, "library/alpine", "latest");
    ASSERT_TRUE(tag);
    EXPECT_EQ(tag->digest, kDigestA);
    EXPECT_EQ(tag->confirmed_at, 1234);
    // Content of an older version counts as used at the upgrade, and what its manifests
    // reference is read later (RegistryCache's back-fill).
    EXPECT_GE(index->tag_last_used(kDockerHub, "library/alpine", "latest").value_or(0), before);
    EXPECT_GE(index->link_last_used(kDockerHub, "library/alpine", kDigestA).value_or(0), before);
    EXPECT_EQ(index->manifests_without_contents(10), Strings{kDigestA});
    index->put_tag(kDockerHub, "library/alpine", "latest", kDigestB, 5, 0b0100);
  }
  EXPECT_EQ(pragma_raw("user_version"), "4");
  auto index = open_index();  // a migrated file opens again as it is
  EXPECT_FALSE(index->visibility(kDockerHub, "library/alpine"));
  EXPECT_EQ(index->tag(kDockerHub, "library/alpine", "latest", 0b0100)->digest, kDigestB);
}

TEST_F(MetadataIndexTest, ContentsAreWrittenWithTheManifestOrLaterAndThenKnown) {
  auto index = open_index();
  index->put_manifest(kDigestA, kIndexMediaType, 100, {"sha256:c1", "sha256:c2"});
  EXPECT_EQ(index->contents(kDigestA), (Strings{"sha256:c1", "sha256:c2"}));
  index->put_manifest(kDigestB, kIndexMediaType, 100);  // contents not known yet
  EXPECT_EQ(index->manifests_without_contents(10), Strings{kDigestB});
  index->set_contents(kDigestB, {"sha256:c3"});
  EXPECT_TRUE(index->manifests_without_contents(10).empty());
  EXPECT_EQ(index->contents(kDigestB), Strings{"sha256:c3"});
  // A re-put replaces the list; setting the contents of an unknown manifest writes nothing.
  index->put_manifest(kDigestA, kIndexMediaType, 100, {"sha256:c2"});
  EXPECT_EQ(index->contents(kDigestA), Strings{"sha256:c2"});
  index->set_contents("sha256:unknown", {"sha256:c9"});
  EXPECT_TRUE(index->contents("sha256:unknown").empty());
}

TEST_F(MetadataIndexTest, UsesRaiseTheLastUseOfTagsLinksAndBlobsNeverLowerIt) {
  auto index = open_index();
  index->put_tag(kQuay, "org/app", "v1", kDigestA, 100, 0b0001);
  index->put_tag(kQuay, "org/app", "v1", kDigestB, 150, 0b0010);
  index->link(kQuay, "org/app", kDigestA, 100);
  index->put_blob(kDigestB, 1, 100);
  EXPECT_EQ(index->tag_last_used(kQuay, "org/app", "v1"), 150);
  index->record_uses({{ContentUse::Kind::tag, kQuay, "org/app", "v1", 500},
                      {ContentUse::Kind::manifest, kQuay, "org/app", kDigestA, 600},
                      {ContentUse::Kind::blob, {}, {}, kDigestB, 700},
                      {ContentUse::Kind::tag, kQuay, "org/app", "unknown", 800}});
  EXPECT_EQ(index->tag_last_used(kQuay, "org/app", "v1"), 500);  // every type set's row
  EXPECT_EQ(index->link_last_used(kQuay, "org/app", kDigestA), 600);
  EXPECT_EQ(index->blob(kDigestB)->last_access, 700);
  EXPECT_FALSE(index->tag_last_used(kQuay, "org/app", "unknown"));
  index->record_uses({{ContentUse::Kind::tag, kQuay, "org/app", "v1", 400},
                      {ContentUse::Kind::manifest, kQuay, "org/app", kDigestA, 10}});
  EXPECT_EQ(index->tag_last_used(kQuay, "org/app", "v1"), 500);
  EXPECT_EQ(index->link_last_used(kQuay, "org/app", kDigestA), 600);
  // A confirmation by upstream is a use too; a link made again keeps the later use.
  index->put_tag(kQuay, "org/app", "v1", kDigestA, 900, 0b0001);
  EXPECT_EQ(index->tag_last_used(kQuay, "org/app", "v1"), 900);
  index->link(kQuay, "org/app", kDigestA, 50);
  EXPECT_EQ(index->link_last_used(kQuay, "org/app", kDigestA), 600);
}

TEST_F(MetadataIndexTest, PinsSurviveReopenAndAreOverwrittenByPattern) {
  {
    auto index = open_index();
    EXPECT_TRUE(index->put_pin({"quay.io/org/**", 10, 0, "cli"}));
    EXPECT_TRUE(index->put_pin({"ghcr.io/a:v1", 20, 99, "prefetch"}));
    EXPECT_FALSE(index->put_pin({"ghcr.io/a:v1", 30, 0, "cli"}));
  }
  auto index = open_index();
  EXPECT_EQ(index->pins(), (std::vector<PinRecord>{{"ghcr.io/a:v1", 30, 0, "cli"},
                                                   {"quay.io/org/**", 10, 0, "cli"}}));
  EXPECT_TRUE(index->remove_pin("quay.io/org/**"));
  EXPECT_FALSE(index->remove_pin("quay.io/org/**"));
  EXPECT_EQ(index->pins().size(), 1U);
}

TEST_F(MetadataIndexTest, ARemovalDeletesTheRowsAndJournalsUntilItEnds) {
  auto index = open_index();
  index->put_manifest(kDigestA, kIndexMediaType, 100, {kDigestB});
  index->put_blob(kDigestB, 10, 1);
  index->link(kQuay, "org/app", kDigestA, 1);
  index->link(kQuay, "org/app", kDigestB, 1);
  index->link(kDockerHub, "library/x", kDigestB, 1);
  index->put_tag(kQuay, "org/app", "v1", kDigestA, 1);
  index->put_tag(kQuay, "org/app", "v2", "sha256:other", 1);
  index->link(kQuay, "org/app", "sha256:other", 1);

  RemovalBatch batch;
  batch.objects = {kDigestA, kDigestB};
  batch.tags = {{kQuay, "org/app", "v2"}};
  batch.links = {{kQuay, "org/app", "sha256:other"}};
  index->begin_removal(batch, 5);
  EXPECT_FALSE(index->holds(kDigestA));
  EXPECT_FALSE(index->holds(kDigestB));
  EXPECT_TRUE(index->contents(kDigestA).empty());
  EXPECT_FALSE(index->linked(kDockerHub, "library/x", kDigestB));  // in every repository
  EXPECT_FALSE(index->tag(kQuay, "org/app", "v1"));                // it named a removed manifest
  EXPECT_FALSE(index->tag(kQuay, "org/app", "v2"));
  EXPECT_FALSE(index->linked(kQuay, "org/app", "sha256:other"));
  EXPECT_EQ(index->pending_removals(), (Strings{kDigestB, kDigestA}));
  index->end_removal({kDigestA});
  EXPECT_EQ(index->pending_removals(), Strings{kDigestB});
}

TEST_F(MetadataIndexTest, ASnapshotDoesNotSeeWhatIsWrittenAfterIt) {
  auto index = open_index();
  index->put_blob(kDigestA, 10, 1);
  auto snapshot = index->snapshot();
  index->put_blob(kDigestB, 20, 2);  // the proxy keeps writing meanwhile
  Strings seen;
  snapshot->blobs([&](std::string_view digest, const BlobRecord&) { seen.emplace_back(digest); });
  EXPECT_EQ(seen, Strings{kDigestA});
  snapshot.reset();
  seen.clear();
  index->snapshot()->blobs(
      [&](std::string_view digest, const BlobRecord&) { seen.emplace_back(digest); });
  EXPECT_EQ(seen.size(), 2U);
}

TEST_F(MetadataIndexTest, GarbageFileThrowsNamingTheFile) {
  {
    std::ofstream out(db_path(), std::ios::binary);
    out << "not a database";
  }
  std::string message = open_error(db_path());
  ASSERT_FALSE(message.empty()) << "opened a file that is not a database";
  EXPECT_TRUE(contains(message, db_path())) << message;
  EXPECT_TRUE(contains(message, "not a database")) << message;
}

TEST_F(MetadataIndexTest, NewerSchemaVersionThrowsAndLeavesFileAlone) {
  exec_raw("PRAGMA user_version = 99");
  std::string message = open_error(db_path());
  ASSERT_FALSE(message.empty()) << "opened a schema from a newer version";
  EXPECT_TRUE(contains(message, db_path())) << message;
  EXPECT_TRUE(contains(message, "version 99")) << message;
  EXPECT_EQ(pragma_raw("user_version"), "99");
  EXPECT_EQ(pragma_raw("journal_mode"), "delete");
}

TEST_F(MetadataIndexTest, UnopenablePathThrowsNamingTheFile) {
  const std::string path = (dir_ / "missing" / "index.db").string();
  std::string message = open_error(path);
  ASSERT_FALSE(message.empty()) << "opened a file in a directory that does not exist";
  EXPECT_TRUE(contains(message, path)) << message;
}

TEST_F(MetadataIndexTest, ConcurrentPutAndTouchFromFourThreads) {
  constexpr int kThreads = 4;
  constexpr int kOpsPerThread = 500;  // half puts, half touches of the blob just put
  auto index = open_index();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&index, t] {
      for (int i = 0; i < kOpsPerThread; i += 2) {
        std::string digest = "sha256:" + std::to_string(t) + "-" + std::to_string(i);
        index->put_blob(digest, 10, i);
        index->touch_blob(digest, 1'000'000 + i);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  constexpr std::size_t kBlobs = kThreads * kOpsPerThread / 2;
  auto all = index->least_recently_used(kBlobs + 10);
  ASSERT_EQ(all.size(), kBlobs);
  EXPECT_EQ(index->total_blob_bytes(), 10U * kBlobs);
  for (const auto& [digest, record] : all) {
    EXPECT_EQ(record.last_access, 1'000'000 + record.stored_at) << digest;
  }
}

TEST_F(MetadataIndexTest, InjectionLookingNamesAreStoredVerbatim) {
  const std::string evil = "a'; DROP TABLE tags; --";
  const std::string quoted = "b\"); DELETE FROM blobs; /*";
  auto index = open_index();
  index->put_tag(evil, evil, evil, evil, 1);
  index->put_tag(kDockerHub, quoted, "ok", kDigestA, 2);
  index->put_manifest(evil, quoted, 3);
  index->put_blob(quoted, 4, 5);
  index->link(evil, quoted, evil);

  auto tag = index->tag(evil, evil, evil);
  ASSERT_TRUE(tag);
  EXPECT_EQ(tag->digest, evil);
  EXPECT_EQ(index->tags(evil, evil), (Strings{evil}));
  EXPECT_EQ(index->tags(kDockerHub, quoted), (Strings{"ok"}));
  auto manifest = index->manifest(evil);
  ASSERT_TRUE(manifest);
  EXPECT_EQ(manifest->media_type, quoted);
  EXPECT_TRUE(index->blob(quoted));
  EXPECT_TRUE(index->linked(evil, quoted, evil));
  EXPECT_FALSE(index->linked(evil, quoted, quoted));

  // The tables are all still there after reopening.
  index.reset();
  index = open_index();
  EXPECT_EQ(index->tags(evil, evil), (Strings{evil}));
  EXPECT_EQ(index->total_blob_bytes(), 4U);
}

}  // namespace
}  // namespace pullthrough::proxy
