#include "proxy/manifest_cache.hpp"

#include "core/asio.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <gtest/gtest.h>
#include <unistd.h>

#include "proxy/digester.hpp"
#include "proxy/local_blob_store.hpp"
#include "proxy/media_types.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/scripted_upstream.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy {
namespace {

namespace fs = std::filesystem;
using http_verb = boost::beast::http::verb;
using testing::manifest_reply;
using testing::ScriptedReply;
using testing::ScriptedUpstream;
using testing::status_reply;

using testing::sha256_of;

const std::string kIndex =
    R"({"schemaVersion":2,"mediaType":")" + std::string(kOciIndex) + R"(","manifests":[]})";
const std::string kOtherIndex = R"({"schemaVersion":2,"mediaType":")" + std::string(kOciIndex) +
                                R"(","manifests":[],"annotations":{"v":"2"}})";
const std::string kManifest =
    R"({"schemaVersion":2,"mediaType":")" + std::string(kDockerManifest) + R"(","layers":[]})";

ScriptedReply unreachable() {
  ScriptedReply reply;
  reply.unreachable = true;
  reply.failure = UpstreamFailure::timeout;
  return reply;
}

class ManifestCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::test_directory("manifests");
    store_ = std::make_unique<LocalBlobStore>(root_.string());
    index_ = MetadataIndex::open((root_ / "metadata.db").string());
    recorder_ = std::make_unique<AccessRecorder>(*index_, disk_.get_executor(), clock_);
    cache_ = std::make_unique<ManifestCache>(*store_, *index_, *recorder_, guard_, clock_,
                                             disk_.get_executor(), counters_);
    registry_.host = "quay.io";
    registry_.manifest_ttl = std::chrono::minutes(5);
  }
  void TearDown() override {
    cache_.reset();
    disk_.join();
    recorder_.reset();
    fs::remove_all(root_);
  }

  ManifestAnswer get(ScriptedUpstream& upstream, const std::string& reference,
                     std::string accept = {}, bool want_body = true) {
    ManifestRequest request;
    request.registry = &registry_;
    request.upstream = &upstream;
    request.repository = "e2e/multi";
    request.reference = reference;
    request.by_digest = reference.find(':') != std::string::npos;
    request.accept = std::move(accept);
    request.want_body = want_body;
    ManifestAnswer answer;
    asio::co_spawn(
        io_, [&]() -> asio::awaitable<void> { answer = co_await cache_->get(request); },
        asio::detached);
    io_.restart();
    io_.run();
    return answer;
  }

  fs::path root_;
  asio::io_context io_;
  asio::thread_pool disk_{1};
  core::testing::FakeWallClock clock_;
  ManifestCounters counters_;
  config::RegistryConfig registry_;
  std::unique_ptr<LocalBlobStore> store_;
  std::unique_ptr<MetadataIndex> index_;
  ContentGuard guard_;
  std::unique_ptr<AccessRecorder> recorder_;
  std::unique_ptr<ManifestCache> cache_;
};

TEST_F(ManifestCacheTest, ColdTagIsFetchedVerifiedAndStored) {
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  auto answer = get(upstream, "v1");
  ASSERT_TRUE(answer.found) << answer.message;
  EXPECT_EQ(answer.digest, sha256_of(kIndex));
  EXPECT_EQ(answer.media_type, kOciIndex);
  EXPECT_EQ(answer.body, kIndex);
  EXPECT_EQ(answer.size, kIndex.size());
  EXPECT_FALSE(answer.stale);
  auto seen = upstream.seen();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].target, "/v2/e2e/multi/manifests/v1");
  EXPECT_EQ(seen[0].repository, "e2e/multi");
  // A client that takes every type gets the canonical answer: all four types are asked for.
  EXPECT_EQ(seen[0].accept, upstream_accept());
  EXPECT_EQ(store_->size(answer.digest), kIndex.size());
  EXPECT_EQ(index_->tag("quay.io", "e2e/multi", "v1")->digest, answer.digest);
  EXPECT_TRUE(index_->linked("quay.io", "e2e/multi", answer.digest));
  EXPECT_EQ(counters_.manifest_misses.value(), 1U);
}

TEST_F(ManifestCacheTest, TagIsServedWithoutUpstreamWhileYoungerThanTtl) {
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  ASSERT_TRUE(get(upstream, "v1").found);
  clock_.advance(std::chrono::minutes(4));
  auto answer = get(upstream, "v1");
  ASSERT_TRUE(answer.found);
  EXPECT_EQ(answer.body, kIndex);
  EXPECT_EQ(upstream.seen().size(), 1U);
  EXPECT_EQ(counters_.manifest_hits.value(), 1U);
}

TEST_F(ManifestCacheTest, ExpiredTagIsRevalidatedWithAHeadAndNotRefetched) {
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  ASSERT_TRUE(get(upstream, "v1").found);
  clock_.advance(std::chrono::minutes(6));
  auto answer = get(upstream, "v1");
  ASSERT_TRUE(answer.found);
  EXPECT_FALSE(answer.stale);
  EXPECT_EQ(upstream.count(http_verb::head), 1U);
  EXPECT_EQ(upstream.count(http_verb::get), 1U);
  EXPECT_EQ(counters_.tag_revalidations_unchanged.value(), 1U);
  // The confirmation moved: the next 4 minutes need no upstream request.
  clock_.advance(std::chrono::minutes(4));
  ASSERT_TRUE(get(upstream, "v1").found);
  EXPECT_EQ(upstream.seen().size(), 2U);
}

TEST_F(ManifestCacheTest, MovedTagIsFetchedAgain) {
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  ASSERT_TRUE(get(upstream, "v1").found);
  upstream.set_script(
      [](const UpstreamRequest&) { return manifest_reply(kOtherIndex, kOciIndex); });
  clock_.advance(std::chrono::minutes(6));
  auto answer = get(upstream, "v1");
  ASSERT_TRUE(answer.found);
  EXPECT_EQ(answer.body, kOtherIndex);
  EXPECT_EQ(index_->tag("quay.io", "e2e/multi", "v1")->digest, sha256_of(kOtherIndex));
}

TEST_F(ManifestCacheTest, StaleMappingServedWhenUpstreamFails) {
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  ASSERT_TRUE(get(upstream, "v1").found);
  int round = 0;
  for (auto reply : {unreachable(), status_reply(503), status_reply(500), status_reply(429)}) {
    upstream.set_script([reply](const UpstreamRequest&) { return reply; });
    clock_.advance(std::chrono::hours(1));
    auto answer = get(upstream, "v1");
    ASSERT_TRUE(answer.found) << "round " << round << ": " << answer.message;
    EXPECT_TRUE(answer.stale);
    EXPECT_EQ(answer.body, kIndex);
    ++round;
  }
  EXPECT_EQ(counters_.stale_tags_served.value(), 4U);
}

TEST_F(ManifestCacheTest, TagRemovedUpstreamIsNotServedStale) {
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  ASSERT_TRUE(get(upstream, "v1").found);
  upstream.set_script([](const UpstreamRequest&) { return status_reply(404); });
  clock_.advance(std::chrono::hours(1));
  auto gets_before = upstream.count(http_verb::get);
  auto answer = get(upstream, "v1");
  EXPECT_FALSE(answer.found);
  EXPECT_EQ(answer.error, OciError::manifest_unknown);
  EXPECT_EQ(counters_.stale_tags_served.value(), 0U);
  // The HEAD's 404 is the answer: no GET to hear it again.
  EXPECT_EQ(upstream.count(http_verb::get), gets_before);
  EXPECT_EQ(upstream.count(http_verb::head), 1U);
}

TEST_F(ManifestCacheTest, RevalidationRefusedUpstreamIsPassedOnWithoutAGet) {
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  ASSERT_TRUE(get(upstream, "v1").found);
  upstream.set_script([](const UpstreamRequest&) { return status_reply(403); });
  clock_.advance(std::chrono::hours(1));
  auto answer = get(upstream, "v1");
  EXPECT_FALSE(answer.found);
  EXPECT_EQ(answer.error, OciError::denied);
  EXPECT_EQ(upstream.count(http_verb::get), 1U);
  EXPECT_EQ(upstream.count(http_verb::head), 1U);
}

TEST_F(ManifestCacheTest, NothingCachedAndUpstreamDownIsUnavailable) {
  ScriptedUpstream upstream([](const UpstreamRequest&) { return unreachable(); });
  auto answer = get(upstream, "v1");
  EXPECT_FALSE(answer.found);
  EXPECT_EQ(answer.error, OciError::unavailable);
  EXPECT_NE(answer.message.find("quay.io/e2e/multi:v1"), std::string::npos) << answer.message;
  EXPECT_NE(answer.message.find("cannot be reached"), std::string::npos) << answer.message;
  EXPECT_EQ(counters_.manifests_unavailable.value(), 1U);
}

// A collection's removals drop exactly what they name from memory. Here the other tag's row goes
// from the index behind the cache's back: only memory can still serve it, as it must while a
// collection is writing the index.
TEST_F(ManifestCacheTest, ForgetDropsTheRemovedTagsOnly) {
  ScriptedUpstream upstream([](const UpstreamRequest& request) {
    return manifest_reply(
        request.target.ends_with(":v1") || request.target.ends_with("/v1") ? kIndex : kOtherIndex,
        kOciIndex);
  });
  ASSERT_TRUE(get(upstream, "v1").found);
  ASSERT_TRUE(get(upstream, "v2").found);
  RemovalBatch expired;
  // Tags never seen first: v1's keys come after several of the chunks forget() locks for.
  for (int i = 0; i < 40; ++i)
    expired.tags.push_back({"quay.io", "e2e/multi", "old" + std::to_string(i)});
  expired.tags.push_back({"quay.io", "e2e/multi", "v1"});
  index_->begin_removal(expired, 0);
  cache_->forget(expired);
  RemovalBatch behind_its_back;
  behind_its_back.tags.push_back({"quay.io", "e2e/multi", "v2"});
  index_->begin_removal(behind_its_back, 0);

  upstream.set_script([](const UpstreamRequest&) { return unreachable(); });
  auto v1 = get(upstream, "v1");
  EXPECT_FALSE(v1.found);
  EXPECT_EQ(v1.error, OciError::unavailable);
  auto v2 = get(upstream, "v2");
  ASSERT_TRUE(v2.found) << v2.message;
  EXPECT_EQ(v2.body, kOtherIndex);
  EXPECT_EQ(upstream.seen().size(), 3U);  // two fetches, then v1 only
}

TEST_F(ManifestCacheTest, ForgetDropsTheLinksOfRemovedReferencesAndObjects) {
  const std::string digest = sha256_of(kManifest);
  const std::string other = sha256_of(kIndex);
  ScriptedUpstream upstream([](const UpstreamRequest& request) {
    return request.target.ends_with(sha256_of(kIndex)) ? manifest_reply(kIndex, kOciIndex)
                                                       : manifest_reply(kManifest, kDockerManifest);
  });
  ASSERT_TRUE(get(upstream, digest).found);
  ASSERT_TRUE(get(upstream, other).found);
  ASSERT_TRUE(get(upstream, digest).found);  // the link is in memory now
  ASSERT_TRUE(get(upstream, other).found);
  ASSERT_EQ(upstream.seen().size(), 2U);
  RemovalBatch link;
  link.links.push_back({"quay.io", "e2e/multi", digest});
  index_->begin_removal(link, 0);
  cache_->forget(link);
  RemovalBatch object;
  object.objects.push_back(other);
  index_->begin_removal(object, 0);
  cache_->forget(object);
  EXPECT_TRUE(store_->remove(other));
  index_->end_removal(object.objects);

  upstream.set_script([](const UpstreamRequest&) { return unreachable(); });
  EXPECT_EQ(get(upstream, digest).error, OciError::unavailable);
  EXPECT_EQ(get(upstream, other).error, OciError::unavailable);
  EXPECT_EQ(upstream.seen().size(), 4U);
}

TEST_F(ManifestCacheTest, UpstreamStatusesMapToSpecErrors) {
  const std::pair<unsigned, OciError> cases[] = {
      {404, OciError::manifest_unknown}, {401, OciError::unauthorized},
      {403, OciError::denied},           {429, OciError::too_many_requests},
      {502, OciError::unavailable},      {418, OciError::upstream_error}};
  for (const auto& [status, error] : cases) {
    ScriptedUpstream upstream([status = status](const UpstreamRequest&) {
      auto reply = status_reply(status);
      reply.fields.emplace_back("Retry-After", "7");
      return reply;
    });
    auto answer = get(upstream, "v1");
    EXPECT_FALSE(answer.found);
    EXPECT_EQ(answer.error, error) << status;
    EXPECT_EQ(answer.retry_after, "7");
  }
}

TEST_F(ManifestCacheTest, ByDigestIsServedFromTheCacheForever) {
  const std::string digest = sha256_of(kManifest);
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kManifest, kDockerManifest); });
  ASSERT_TRUE(get(upstream, digest).found);
  clock_.advance(std::chrono::hours(24 * 365));
  upstream.set_script([](const UpstreamRequest&) { return unreachable(); });
  auto answer = get(upstream, digest);
  ASSERT_TRUE(answer.found);
  EXPECT_FALSE(answer.stale);
  EXPECT_EQ(answer.body, kManifest);
  EXPECT_EQ(answer.media_type, kDockerManifest);
  EXPECT_EQ(upstream.seen().size(), 1U);
}

TEST_F(ManifestCacheTest, ByDigestWithWrongBytesIsRefusedAndNotStored) {
  const std::string digest = sha256_of(kManifest);
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex, false); });
  auto answer = get(upstream, digest);
  EXPECT_FALSE(answer.found);
  EXPECT_EQ(answer.error, OciError::upstream_error);
  EXPECT_EQ(counters_.manifest_digest_mismatches.value(), 1U);
  EXPECT_FALSE(store_->size(digest).has_value());
  EXPECT_FALSE(store_->size(sha256_of(kIndex)).has_value());
  EXPECT_FALSE(index_->manifest(digest).has_value());
}

TEST_F(ManifestCacheTest, TagWhoseDigestHeaderLiesIsRefused) {
  ScriptedUpstream upstream([](const UpstreamRequest&) {
    auto reply = manifest_reply(kIndex, kOciIndex, false);
    reply.fields.emplace_back("Docker-Content-Digest", sha256_of(kManifest));
    return reply;
  });
  auto answer = get(upstream, "v1");
  EXPECT_FALSE(answer.found);
  EXPECT_EQ(answer.error, OciError::upstream_error);
  EXPECT_FALSE(index_->tag("quay.io", "e2e/multi", "v1").has_value());
}

TEST_F(ManifestCacheTest, OversizedManifestIsRefused) {
  ScriptedUpstream upstream([](const UpstreamRequest&) {
    return manifest_reply(std::string(kMaxManifestBytes + 1, ' '), kOciManifest);
  });
  auto answer = get(upstream, "v1");
  EXPECT_FALSE(answer.found);
  EXPECT_EQ(answer.error, OciError::upstream_error);
  EXPECT_NE(answer.message.find("limit"), std::string::npos);
}

TEST_F(ManifestCacheTest, CachedTypeTheClientDoesNotAcceptGoesUpstreamWithItsAccept) {
  ScriptedUpstream upstream([](const UpstreamRequest& request) {
    if (request.accept == upstream_accept()) return manifest_reply(kIndex, kOciIndex);
    return manifest_reply(kManifest, kDockerManifest);
  });
  ASSERT_TRUE(get(upstream, "v1").found);
  auto answer = get(upstream, "v1", std::string(kDockerManifest));
  ASSERT_TRUE(answer.found);
  EXPECT_EQ(answer.media_type, kDockerManifest);
  EXPECT_EQ(upstream.seen().back().accept, kDockerManifest);
  // The narrower answer does not replace the tag's canonical mapping.
  EXPECT_EQ(index_->tag("quay.io", "e2e/multi", "v1")->digest, sha256_of(kIndex));
  // And a client taking everything still gets the index from the cache.
  auto full = get(upstream, "v1", "application/vnd.oci.image.index.v1+json, */*;q=0.5");
  EXPECT_EQ(full.media_type, kOciIndex);
  EXPECT_EQ(upstream.seen().size(), 2U);
}

TEST_F(ManifestCacheTest, HeadAnswersWithoutBody) {
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  ASSERT_TRUE(get(upstream, "v1").found);
  auto answer = get(upstream, "v1", {}, false);
  ASSERT_TRUE(answer.found);
  EXPECT_TRUE(answer.body.empty());
  EXPECT_EQ(answer.size, kIndex.size());
  EXPECT_EQ(answer.digest, sha256_of(kIndex));
}

// Regression: a tag was recorded only for a client that accepted all four manifest types, so a
// client with a narrower Accept (OCI-only tools, curl, many CI tools) sent every pull by tag
// upstream, each one counted against Docker Hub's pull limit.
TEST_F(ManifestCacheTest, ANarrowAcceptIsServedFromTheCacheAfterOneFetch) {
  const std::string accept = std::string(kOciIndex) + ", " + std::string(kOciManifest) + ", " +
                             std::string(kDockerManifest);
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  for (int i = 0; i < 3; ++i) {
    auto answer = get(upstream, "v1", accept);
    ASSERT_TRUE(answer.found) << answer.message;
    EXPECT_EQ(answer.body, kIndex);
  }
  auto seen = upstream.seen();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0].accept, accept);  // the client's own Accept went upstream
  EXPECT_EQ(counters_.manifest_misses.value(), 1U);
  EXPECT_EQ(counters_.manifest_hits.value(), 2U);
  const ManifestTypeSet types = accepted_manifest_types(accept);
  EXPECT_EQ(index_->tag("quay.io", "e2e/multi", "v1", types)->digest, sha256_of(kIndex));
  // Not the canonical mapping: upstream was not asked with every type.
  EXPECT_FALSE(index_->tag("quay.io", "e2e/multi", "v1").has_value());
  EXPECT_EQ(index_->tags("quay.io", "e2e/multi"), std::vector<std::string>{"v1"});
}

TEST_F(ManifestCacheTest, ANarrowMappingIsRevalidatedWithTheTypesItWasMadeWith) {
  ScriptedUpstream upstream([](const UpstreamRequest& request) {
    if (request.method == http_verb::head) {
      auto reply = status_reply(200);
      reply.fields.emplace_back("Docker-Content-Digest", sha256_of(kManifest));
      return reply;
    }
    return manifest_reply(kManifest, kDockerManifest);
  });
  const std::string accept = std::string(kDockerManifest) + ";q=0.9, text/plain";
  ASSERT_TRUE(get(upstream, "v1", accept).found);
  clock_.advance(std::chrono::minutes(6));
  auto answer = get(upstream, "v1", accept);
  ASSERT_TRUE(answer.found);
  EXPECT_EQ(answer.body, kManifest);
  auto seen = upstream.seen();
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[1].method, http_verb::head);
  EXPECT_EQ(seen[1].accept, kDockerManifest);
  EXPECT_EQ(counters_.tag_revalidations_unchanged.value(), 1U);
}

TEST_F(ManifestCacheTest, TheCanonicalMappingServesANarrowClientThatTakesItsType) {
  ScriptedUpstream upstream(
      [](const UpstreamRequest&) { return manifest_reply(kIndex, kOciIndex); });
  ASSERT_TRUE(get(upstream, "v1").found);
  auto answer = get(upstream, "v1", std::string(kOciIndex) + ", " + std::string(kOciManifest));
  ASSERT_TRUE(answer.found);
  EXPECT_EQ(answer.media_type, kOciIndex);
  EXPECT_EQ(upstream.seen().size(), 1U);
  EXPECT_EQ(counters_.manifest_hits.value(), 1U);
}

TEST_F(ManifestCacheTest, ANarrowMappingServesStaleWhenUpstreamFails) {
  bool down = false;
  ScriptedUpstream upstream([&down](const UpstreamRequest&) {
    return down ? unreachable() : manifest_reply(kManifest, kDockerManifest);
  });
  ASSERT_TRUE(get(upstream, "v1", std::string(kDockerManifest)).found);
  down = true;
  clock_.advance(std::chrono::hours(1));
  auto answer = get(upstream, "v1", std::string(kDockerManifest));
  ASSERT_TRUE(answer.found) << answer.message;
  EXPECT_TRUE(answer.stale);
  EXPECT_EQ(answer.body, kManifest);
}

}  // namespace
}  // namespace pullthrough::proxy
