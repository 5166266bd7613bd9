#include "proxy/lifecycle/collector.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "proxy/digester.hpp"
#include "proxy/lifecycle/content_guard.hpp"
#include "proxy/lifecycle/manifest_references.hpp"
#include "proxy/local_blob_store.hpp"
#include "proxy/media_types.hpp"
#include "proxy/metadata_index.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy {
namespace {

constexpr UnixSeconds kDay = 86400;
constexpr UnixSeconds kNow = 1'800'000'000;

std::span<const std::uint8_t> bytes_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string digest_of(const std::string& body) {
  Digester digester("sha256");
  digester.update(bytes_of(body));
  return digester.finish();
}

// Content built the way the proxy stores it: bytes in the store, rows in the index, manifests
// with the contents manifest_references() reads from them. Times are seconds before kNow.
class CollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::test_directory("collector");
    store_ = std::make_unique<LocalBlobStore>((root_ / "store").string());
    index_ = MetadataIndex::open((root_ / "metadata.db").string());
  }
  void TearDown() override {
    index_.reset();
    std::filesystem::remove_all(root_);
  }

  void put_bytes(const std::string& digest, const std::string& body) {
    auto writer = store_->create(digest, body.size());
    writer->write(bytes_of(body));
    ASSERT_EQ(writer->commit().status, CommitStatus::stored);
  }

  // A blob of `size` bytes, unique to `name`, fetched for `host/repo` `age` ago.
  std::string blob(const std::string& name, std::size_t size, const std::string& host,
                   const std::string& repo, UnixSeconds age = 0) {
    std::string body = name + std::string(size - std::min(size, name.size()), '.');
    auto digest = digest_of(body);
    put_bytes(digest, body);
    index_->put_blob(digest, body.size(), kNow - age);
    index_->link(host, repo, digest);
    return digest;
  }

  std::string store_manifest(const std::string& media_type, const std::string& body) {
    auto digest = digest_of(body);
    put_bytes(digest, body);
    std::string error;
    auto refs = manifest_references(media_type, body, error);
    EXPECT_TRUE(refs) << error;
    std::vector<std::string> contents = refs->manifests;
    contents.insert(contents.end(), refs->blobs.begin(), refs->blobs.end());
    index_->put_manifest(digest, media_type, body.size(), contents);
    return digest;
  }

  // An image manifest with a config and `layers`, in host/repo: tagged `tag` (or, with an empty
  // tag, pulled by digest), last used `age` ago.
  std::string image(const std::string& host, const std::string& repo, const std::string& tag,
                    const std::vector<std::string>& layers, UnixSeconds age) {
    auto config = blob("config of " + host + repo + tag, 64, host, repo, age);
    std::string body = R"({"schemaVersion":2,"mediaType":")" + std::string(kOciManifest) +
                       R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json",)" +
                       R"("digest":")" + config + R"(","size":64},"layers":[)";
    for (std::size_t i = 0; i < layers.size(); ++i) {
      if (i > 0) body += ",";
      body += R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
              layers[i] + R"(","size":1})";
    }
    body += "]}";
    auto digest = store_manifest(std::string(kOciManifest), body);
    refer(host, repo, tag, digest, age);
    return digest;
  }

  std::string index_of(const std::string& host, const std::string& repo, const std::string& tag,
                       const std::vector<std::string>& children, UnixSeconds age) {
    std::string body =
        R"({"schemaVersion":2,"mediaType":")" + std::string(kOciIndex) + R"(","manifests":[)";
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (i > 0) body += ",";
      body += R"({"mediaType":")" + std::string(kOciManifest) + R"(","digest":")" + children[i] +
              R"(","size":1})";
    }
    body += "]}";
    auto digest = store_manifest(std::string(kOciIndex), body);
    refer(host, repo, tag, digest, age);
    return digest;
  }

  void refer(const std::string& host, const std::string& repo, const std::string& tag,
             const std::string& digest, UnixSeconds age) {
    // As the proxy does: a link's last use is that of pulls by digest.
    index_->link(host, repo, digest, tag.empty() ? kNow - age : 0);
    if (!tag.empty()) index_->put_tag(host, repo, tag, digest, kNow - age);
  }

  static RetentionPolicy rules(const std::string& yaml) {
    auto loaded = config::load_string("retention:\n  rules:\n" + yaml, "t.yaml");
    EXPECT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].message);
    RetentionPolicy policy;
    if (loaded.config) policy.rules = loaded.config->retention.rules;
    return policy;
  }

  CollectionPlan plan(const RetentionPolicy& policy, UnixSeconds now = kNow) {
    return Collector::plan(*index_->snapshot(), policy, now);
  }

  // A whole collection, as the appliance runs one.
  CollectionPlan collect(const RetentionPolicy& policy, UnixSeconds now = kNow) {
    guard_.begin_collection();
    auto planned = plan(policy, now);
    EXPECT_EQ(planned.blocked, "");
    applied_ = Collector::apply(planned, *index_, *store_, guard_, now);
    guard_.end_collection();
    return planned;
  }

  // The references a plan removes in their own right (not the links that go with them).
  static std::vector<ReferenceRemoval> own(const CollectionPlan& planned) {
    std::vector<ReferenceRemoval> out;
    for (const auto& r : planned.references) {
      if (!r.implied) out.push_back(r);
    }
    return out;
  }

  bool stored(const std::string& digest) { return store_->size(digest).has_value(); }
  bool tagged(const std::string& host, const std::string& repo, const std::string& tag) {
    return index_->tag(host, repo, tag).has_value();
  }
  // Every object of the image is stored and indexed.
  bool whole(const std::vector<std::string>& digests) {
    return std::all_of(digests.begin(), digests.end(),
                       [&](const std::string& d) { return stored(d) && index_->holds(d); });
  }

  std::filesystem::path root_;
  std::unique_ptr<LocalBlobStore> store_;
  std::unique_ptr<MetadataIndex> index_;
  ContentGuard guard_;
  Collector::Applied applied_;
};

TEST_F(CollectorTest, WithoutRulesEverythingIsKept) {
  auto layer = blob("layer", 100, "quay.io", "org/app", 400 * kDay);
  auto manifest = image("quay.io", "org/app", "v1", {layer}, 400 * kDay);
  auto planned = collect({});
  EXPECT_TRUE(planned.objects.empty());
  EXPECT_TRUE(planned.references.empty());
  EXPECT_TRUE(whole({layer, manifest}));
  EXPECT_TRUE(tagged("quay.io", "org/app", "v1"));
}

TEST_F(CollectorTest, AnImageUnusedForLongerThanItsRuleGoesAndARecentOneStays) {
  auto old_layer = blob("old layer", 1000, "quay.io", "org/app", 3 * kDay);
  auto old_image = image("quay.io", "org/app", "old", {old_layer}, 3 * kDay);
  auto new_layer = blob("new layer", 1000, "quay.io", "org/app", kDay);
  auto new_image = image("quay.io", "org/app", "new", {new_layer}, kDay);

  auto planned = collect(rules("    - {match: \"**\", expire_unused_after: 2d}\n"));
  auto refs = own(planned);
  ASSERT_EQ(refs.size(), 1U);
  EXPECT_EQ(refs[0].ref(), "quay.io/org/app:old");
  EXPECT_EQ(refs[0].cause, RemovalCause::expired);
  EXPECT_NE(refs[0].reason.find("unused for 3d"), std::string::npos) << refs[0].reason;
  EXPECT_NE(refs[0].reason.find("rule 1: **"), std::string::npos);
  // The repository's link to the manifest goes with the tag.
  ASSERT_EQ(planned.references.size(), 2U);
  EXPECT_EQ(planned.references[1].ref(), "quay.io/org/app@" + old_image);
  EXPECT_FALSE(index_->linked("quay.io", "org/app", old_image));
  EXPECT_FALSE(tagged("quay.io", "org/app", "old"));
  EXPECT_FALSE(stored(old_image));
  EXPECT_FALSE(stored(old_layer));
  EXPECT_FALSE(index_->holds(old_layer));
  EXPECT_TRUE(tagged("quay.io", "org/app", "new"));
  EXPECT_TRUE(whole({new_image, new_layer}));
  EXPECT_EQ(applied_.objects_removed, 3U);  // the manifest, its config and its layer
  EXPECT_EQ(applied_.bytes_freed, planned.bytes_freed);
  EXPECT_TRUE(index_->pending_removals().empty());
}

// More references and objects than one index transaction takes: every batch is applied.
TEST_F(CollectorTest, ACollectionOfManyTransactionsRemovesAllItPlanned) {
  constexpr int kImages = 100;
  std::vector<std::string> old_images;
  for (int i = 0; i < kImages; ++i) {
    auto tag = "old" + std::to_string(i);
    auto layer = blob("layer " + tag, 100, "quay.io", "org/app", 3 * kDay);
    old_images.push_back(image("quay.io", "org/app", tag, {layer}, 3 * kDay));
  }
  auto kept_layer = blob("kept layer", 100, "quay.io", "org/app", kDay);
  auto kept = image("quay.io", "org/app", "new", {kept_layer}, kDay);

  auto planned = collect(rules("    - {match: \"**\", expire_unused_after: 2d}\n"));
  EXPECT_EQ(own(planned).size(), std::size_t{kImages});
  EXPECT_EQ(planned.references.size(), std::size_t{2 * kImages});  // each tag and its link
  EXPECT_EQ(applied_.references_removed, planned.references.size());
  EXPECT_EQ(applied_.objects_removed, std::size_t{3 * kImages});
  for (int i = 0; i < kImages; ++i) {
    EXPECT_FALSE(tagged("quay.io", "org/app", "old" + std::to_string(i))) << i;
    EXPECT_FALSE(index_->linked("quay.io", "org/app", old_images[i])) << i;
    EXPECT_FALSE(stored(old_images[i])) << i;
  }
  EXPECT_TRUE(tagged("quay.io", "org/app", "new"));
  EXPECT_TRUE(whole({kept, kept_layer}));
  EXPECT_TRUE(index_->pending_removals().empty());
}

TEST_F(CollectorTest, ALayerSharedWithAKeptImageInAnotherRegistryStays) {
  auto shared = blob("shared base layer", 5000, "quay.io", "org/app", 10 * kDay);
  index_->link("ghcr.io", "other/tool", shared);
  auto own = blob("quay only", 100, "quay.io", "org/app", 10 * kDay);
  auto expired = image("quay.io", "org/app", "v1", {shared, own}, 10 * kDay);
  auto kept = image("ghcr.io", "other/tool", "v2", {shared}, 0);

  collect(rules("    - {match: \"**\", expire_unused_after: 7d}\n"));
  EXPECT_FALSE(stored(expired));
  EXPECT_FALSE(stored(own));
  EXPECT_TRUE(whole({kept, shared}));
  EXPECT_TRUE(tagged("ghcr.io", "other/tool", "v2"));
}

TEST_F(CollectorTest, TheFirstMatchingRuleDecides) {
  auto kept = image("quay.io", "myorg/base", "old", {}, 90 * kDay);
  auto rc = image("registry-1.docker.io", "library/redis", "7.2-rc1", {}, 3 * kDay);
  auto release = image("registry-1.docker.io", "library/redis", "7.2", {}, 3 * kDay);
  auto policy = rules(
      "    - {match: \"quay.io/myorg/**\", keep: forever}\n"
      "    - {match: \"registry-1.docker.io/library/*:*-rc*\", expire_unused_after: 2d}\n"
      "    - {match: \"**\", expire_unused_after: 30d}\n");
  auto refs = own(collect(policy));
  ASSERT_EQ(refs.size(), 1U);
  EXPECT_EQ(refs[0].ref(), "registry-1.docker.io/library/redis:7.2-rc1");
  EXPECT_TRUE(stored(kept));  // 90 days unused, but the first rule keeps it forever
  EXPECT_FALSE(stored(rc));
  EXPECT_TRUE(stored(release));  // 3 days: the rc rule does not match it, the last one keeps it
}

TEST_F(CollectorTest, ChangingARuleAppliesToWhatIsAlreadyCached) {
  auto manifest = image("quay.io", "org/app", "v1", {}, 5 * kDay);
  collect(rules("    - {match: \"**\", expire_unused_after: 30d}\n"));
  EXPECT_TRUE(stored(manifest));
  collect(rules("    - {match: \"**\", expire_unused_after: 1d}\n"));
  EXPECT_FALSE(stored(manifest));
}

TEST_F(CollectorTest, KeepTagsKeepsTheMostRecentlyUsedTagsOfEachRepository) {
  std::vector<std::string> manifests;
  for (int i = 0; i < 5; ++i) {
    manifests.push_back(image("quay.io", "org/app", "v" + std::to_string(i), {}, (5 - i) * 3600));
  }
  // Another repository's tags are counted on their own.
  auto other = image("quay.io", "org/other", "old", {}, 10 * kDay);
  // A sixth tag naming the same manifest as the newest: its removal frees nothing.
  refer("quay.io", "org/app", "alias", manifests[4], 6 * 3600);

  auto planned = collect(rules("    - {match: \"**\", keep_tags: 2}\n"));
  std::vector<std::string> refs;
  for (const auto& r : own(planned)) {
    refs.push_back(r.ref());
    EXPECT_EQ(r.cause, RemovalCause::too_many_tags);
    EXPECT_NE(r.reason.find("keeps 2"), std::string::npos) << r.reason;
  }
  std::sort(refs.begin(), refs.end());
  EXPECT_EQ(refs, (std::vector<std::string>{"quay.io/org/app:alias", "quay.io/org/app:v0",
                                            "quay.io/org/app:v1", "quay.io/org/app:v2"}));
  EXPECT_TRUE(tagged("quay.io", "org/app", "v3"));
  EXPECT_TRUE(tagged("quay.io", "org/app", "v4"));
  EXPECT_FALSE(tagged("quay.io", "org/app", "alias"));
  EXPECT_FALSE(stored(manifests[0]));
  EXPECT_FALSE(stored(manifests[2]));
  EXPECT_TRUE(stored(manifests[3]));
  EXPECT_TRUE(stored(manifests[4]));  // still named by v4
  EXPECT_TRUE(stored(other));
}

TEST_F(CollectorTest, AnIndexKeepsItsChildrenAndAChildPulledByDigestCountsAsTheTagsUse) {
  auto layer = blob("amd64 layer", 100, "quay.io", "org/app", 10 * kDay);
  auto amd64 = image("quay.io", "org/app", "", {layer}, 10 * kDay);
  auto arm64 = image("quay.io", "org/app", "", {}, 10 * kDay);
  auto index = index_of("quay.io", "org/app", "v1", {amd64, arm64}, 10 * kDay);
  auto policy = rules("    - {match: \"**\", expire_unused_after: 7d}\n");

  // containerd: the tag is resolved once, the child is then pulled by digest every day.
  index_->record_uses(
      {ContentUse{ContentUse::Kind::manifest, "quay.io", "org/app", amd64, kNow - 3600}});
  auto planned = collect(policy);
  EXPECT_TRUE(planned.references.empty());
  EXPECT_TRUE(whole({index, amd64, arm64, layer}));

  // Nobody pulls it any more: the whole image goes, children included.
  planned = collect(policy, kNow + 8 * kDay);
  auto refs = own(planned);
  ASSERT_EQ(refs.size(), 1U);
  EXPECT_EQ(refs[0].ref(), "quay.io/org/app:v1");
  // The links of the index and of both children go with the tag.
  EXPECT_EQ(planned.references.size(), 4U);
  EXPECT_FALSE(index_->linked("quay.io", "org/app", amd64));
  EXPECT_FALSE(stored(index));
  EXPECT_FALSE(stored(amd64));
  EXPECT_FALSE(stored(arm64));
  EXPECT_FALSE(stored(layer));
}

TEST_F(CollectorTest, AReferenceByDigestIsJudgedAsUntaggedContent) {
  auto manifest = image("quay.io", "org/app", "", {}, 3 * kDay);
  // A rule with a tag part matches tagged references only.
  auto planned = collect(rules("    - {match: \"**:*\", expire_unused_after: 1d}\n"));
  EXPECT_TRUE(stored(manifest));
  planned = collect(rules("    - {match: \"quay.io/org/*\", expire_unused_after: 1d}\n"));
  ASSERT_EQ(own(planned).size(), 1U);
  EXPECT_EQ(own(planned)[0].ref(), "quay.io/org/app@" + manifest);
  EXPECT_FALSE(stored(manifest));
  EXPECT_FALSE(index_->linked("quay.io", "org/app", manifest));
}

TEST_F(CollectorTest, ABlobInNoImageIsJudgedByItsOwnLastUse) {
  auto stale = blob("fetched alone long ago", 100, "quay.io", "org/app", 40 * kDay);
  auto fresh = blob("fetched alone today", 100, "quay.io", "org/app", 3600);
  auto planned = collect(rules("    - {match: \"**\", expire_unused_after: 30d}\n"));
  ASSERT_EQ(planned.objects.size(), 1U);
  EXPECT_NE(planned.objects[0].reason.find("in no cached image"), std::string::npos);
  EXPECT_FALSE(stored(stale));
  EXPECT_TRUE(stored(fresh));
}

TEST_F(CollectorTest, PinsKeepWhatTheyNameWhateverTheRules) {
  auto by_tag = image("quay.io", "org/a", "v1", {}, 100 * kDay);
  auto by_digest = image("quay.io", "org/b", "v1", {}, 100 * kDay);
  auto by_glob = image("ghcr.io", "team/c", "v1", {}, 100 * kDay);
  auto lapsed = image("quay.io", "org/d", "v1", {}, 100 * kDay);
  auto unpinned = image("quay.io", "org/e", "v1", {}, 100 * kDay);
  ASSERT_TRUE(index_->put_pin({"quay.io/org/a:v1", kNow, 0, "cli"}));
  ASSERT_TRUE(index_->put_pin({"quay.io/org/b@" + by_digest, kNow, 0, "cli"}));
  ASSERT_TRUE(index_->put_pin({"ghcr.io/team/**", kNow, 0, "cli"}));
  ASSERT_TRUE(index_->put_pin({"quay.io/org/d:v1", kNow - kDay, kNow - 1, "prefetch"}));

  auto planned = collect(rules("    - {match: \"**\", expire_unused_after: 1d}\n"));
  EXPECT_TRUE(stored(by_tag));
  EXPECT_TRUE(stored(by_digest));
  EXPECT_TRUE(stored(by_glob));
  EXPECT_FALSE(stored(lapsed));  // its pin expired
  EXPECT_FALSE(stored(unpinned));
  EXPECT_EQ(planned.pinned_bytes, index_->manifest(by_tag)->size +
                                      index_->manifest(by_digest)->size +
                                      index_->manifest(by_glob)->size + 3 * 64);
}

TEST_F(CollectorTest, ASizeSqueezeEvictsLeastRecentlyUsedImagesDownToTheLowWatermark) {
  auto base = blob("shared base", 4000, "quay.io", "org/base", kDay);
  std::vector<std::string> layers;
  std::vector<std::string> images;
  for (int i = 0; i < 4; ++i) {
    layers.push_back(blob("layer " + std::to_string(i), 10000, "quay.io", "org/app", kDay));
    images.push_back(
        image("quay.io", "org/app", "v" + std::to_string(i), {base, layers[i]}, (10 - i) * 3600));
  }
  // The least recently used of all, but pinned.
  auto pinned_layer = blob("pinned layer", 10000, "quay.io", "org/pinned", 30 * kDay);
  auto pinned = image("quay.io", "org/pinned", "v1", {pinned_layer}, 30 * kDay);
  ASSERT_TRUE(index_->put_pin({"quay.io/org/pinned:v1", kNow, 0, "cli"}));

  auto policy = rules("    - {match: \"**\", expire_unused_after: 30d}\n");
  const std::uint64_t total = plan(policy).stored_bytes;
  ASSERT_GT(total, 54000U);
  // Room for the pinned image, the base and two images, with the low watermark below three.
  policy.max_size = total - 15000;
  policy.low_watermark = total - 20000;
  auto planned = collect(policy);
  EXPECT_EQ(planned.shortfall, 0U);
  EXPECT_LE(planned.stored_bytes - planned.bytes_freed, policy.low_watermark);
  for (const auto& r : planned.references) EXPECT_EQ(r.cause, RemovalCause::evicted);
  EXPECT_FALSE(stored(images[0]));  // least recently used first
  EXPECT_FALSE(stored(layers[0]));
  EXPECT_FALSE(stored(images[1]));
  EXPECT_FALSE(stored(layers[1]));
  EXPECT_TRUE(whole({images[2], layers[2], images[3], layers[3], base}));
  EXPECT_TRUE(whole({pinned, pinned_layer}));

  // A bound only the pinned image could meet: everything else goes, and the plan says by how
  // much it fell short.
  policy.max_size = 1000;
  policy.low_watermark = 900;
  planned = collect(policy);
  EXPECT_GT(planned.shortfall, 0U);
  EXPECT_TRUE(whole({pinned, pinned_layer}));
  EXPECT_FALSE(stored(base));
  EXPECT_FALSE(stored(images[3]));
}

TEST_F(CollectorTest, FreeSpaceNearMinFreeEvictsTheBytesItNeeds) {
  auto older = image("quay.io", "org/app", "a", {blob("a", 5000, "quay.io", "org/app")}, 7200);
  auto newer = image("quay.io", "org/app", "b", {blob("b", 5000, "quay.io", "org/app")}, 3600);
  RetentionPolicy policy;
  policy.free_up = 100;
  auto planned = collect(policy);
  EXPECT_FALSE(stored(older));
  EXPECT_TRUE(stored(newer));
  EXPECT_GE(planned.bytes_freed, 100U);
}

TEST_F(CollectorTest, ContentInUseOrWrittenSinceTheSnapshotIsLeftForTheNextRun) {
  auto read_layer = blob("read", 100, "quay.io", "org/app", 10 * kDay);
  auto written_layer = blob("written", 100, "quay.io", "org/app", 10 * kDay);
  auto manifest = image("quay.io", "org/app", "v1", {read_layer, written_layer}, 10 * kDay);
  auto policy = rules("    - {match: \"**\", expire_unused_after: 1d}\n");

  guard_.begin_collection();
  auto planned = plan(policy);
  auto reading = guard_.read(read_layer);  // a client is being sent it
  ASSERT_TRUE(reading);
  guard_.write(written_layer);  // fetched again after the snapshot, and done
  auto applied = Collector::apply(planned, *index_, *store_, guard_, kNow);
  guard_.end_collection();
  EXPECT_EQ(applied.objects_busy, 2U);
  EXPECT_TRUE(stored(read_layer));
  EXPECT_TRUE(index_->holds(read_layer));
  EXPECT_TRUE(stored(written_layer));
  EXPECT_FALSE(stored(manifest));
  // While it is removed, a reader is turned away (it fetches instead).
  reading = {};
  ASSERT_TRUE(guard_.begin_removal(read_layer));
  EXPECT_FALSE(guard_.read(read_layer));
  guard_.end_removal(read_layer);
  EXPECT_TRUE(guard_.read(read_layer));
  EXPECT_EQ(guard_.busy(), 0U);
}

TEST_F(CollectorTest, ACrashBetweenTheRowsAndTheBytesIsFinishedAtTheNextStart) {
  auto gone = blob("gone", 100, "quay.io", "org/app");
  auto back = blob("fetched again", 100, "quay.io", "org/app");
  RemovalBatch batch;
  batch.objects = {gone, back};
  index_->begin_removal(batch, kNow);  // and then the process died
  EXPECT_FALSE(index_->holds(gone));
  EXPECT_TRUE(stored(gone));
  index_->put_blob(back, 100, kNow);  // stored again after the crash, before the next start

  index_.reset();
  index_ = MetadataIndex::open((root_ / "metadata.db").string());
  EXPECT_EQ(index_->pending_removals().size(), 2U);
  EXPECT_EQ(Collector::finish_removals(*index_, *store_), 2U);
  EXPECT_FALSE(stored(gone));
  EXPECT_TRUE(stored(back));
  EXPECT_TRUE(index_->pending_removals().empty());
}

TEST_F(CollectorTest, NothingIsDecidedWhileManifestContentsAreUnknown) {
  auto layer = blob("layer", 100, "quay.io", "org/app", 10 * kDay);
  index_->put_manifest(digest_of("old manifest"), std::string(kOciManifest), 12);
  auto planned = plan(rules("    - {match: \"**\", expire_unused_after: 1d}\n"));
  EXPECT_NE(planned.blocked, "");
  EXPECT_TRUE(planned.objects.empty());
  EXPECT_TRUE(stored(layer));
}

TEST_F(CollectorTest, RemovalByRequestTakesWhatNoOtherReferenceKeeps) {
  auto shared = blob("shared", 100, "quay.io", "org/a");
  auto own = blob("own", 100, "quay.io", "org/a");
  auto a = image("quay.io", "org/a", "v1", {shared, own}, 0);
  auto b = image("quay.io", "org/b", "v1", {shared}, 0);
  ASSERT_TRUE(index_->put_pin({"quay.io/org/a:v1", kNow, 0, "cli"}));
  std::string error;
  auto planned = Collector::plan_removal(*index_->snapshot(), "quay.io/org/a:v1", error);
  ASSERT_EQ(error, "");
  Collector::apply(planned, *index_, *store_, guard_, kNow);
  EXPECT_FALSE(stored(a));
  EXPECT_FALSE(stored(own));
  EXPECT_TRUE(whole({b, shared}));

  planned = Collector::plan_removal(*index_->snapshot(), "quay.io/org/nothing:here", error);
  EXPECT_EQ(error, "");
  EXPECT_TRUE(planned.references.empty());
  EXPECT_TRUE(planned.objects.empty());
  Collector::plan_removal(*index_->snapshot(), "quay.io/org/a@sha256:nothex", error);
  EXPECT_NE(error.find("not a digest"), std::string::npos);
}

TEST_F(CollectorTest, TheReportShowsSizesLastUsePinsAndRules) {
  auto shared = blob("shared", 1000, "quay.io", "org/a");
  auto own = blob("own", 500, "quay.io", "org/a");
  auto a = image("quay.io", "org/a", "v1", {shared, own}, 3600);
  image("quay.io", "org/b", "v1", {shared}, 7200);
  ASSERT_TRUE(index_->put_pin({"quay.io/org/b:*", kNow, 0, "cli"}));
  auto policy = rules("    - {match: \"quay.io/**\", expire_unused_after: 30d}\n");
  std::string error;
  auto report = Collector::references(*index_->snapshot(), policy, kNow, "", error);
  ASSERT_EQ(report.size(), 2U);
  EXPECT_EQ(report[0].ref, "quay.io/org/a:v1");
  EXPECT_EQ(report[0].digest, a);
  const auto manifest_size = index_->manifest(a)->size;
  EXPECT_EQ(report[0].size, manifest_size + 64 + 1000 + 500);
  EXPECT_EQ(report[0].unique_size, manifest_size + 64 + 500);
  EXPECT_EQ(report[0].last_used, kNow - 3600);
  EXPECT_FALSE(report[0].pinned);
  EXPECT_EQ(report[0].rule, "rule 1: quay.io/**");
  EXPECT_TRUE(report[1].pinned);
  EXPECT_EQ(report[1].rule, "pin quay.io/org/b:*");

  report = Collector::references(*index_->snapshot(), policy, kNow, "quay.io/org/b", error);
  ASSERT_EQ(report.size(), 1U);
  EXPECT_EQ(report[0].ref, "quay.io/org/b:v1");

  auto usage = Collector::usage(*index_->snapshot(), policy, kNow);
  EXPECT_EQ(usage.total, plan(policy).stored_bytes);
  EXPECT_EQ(usage.pinned, report[0].size);
  EXPECT_EQ(usage.evictable, usage.total - usage.pinned);
  ASSERT_EQ(usage.by_registry.size(), 1U);
  EXPECT_EQ(usage.by_registry[0].first, "quay.io");
}

}  // namespace
}  // namespace pullthrough::proxy
