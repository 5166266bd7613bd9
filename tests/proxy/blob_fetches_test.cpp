#include "proxy/blob_fetches.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <gtest/gtest.h>
#include <unistd.h>

#include "proxy/digester.hpp"
#include "proxy/local_blob_store.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/scripted_upstream.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy {
namespace {

namespace fs = std::filesystem;
using http_verb = boost::beast::http::verb;
using testing::ScriptedReply;
using testing::ScriptedUpstream;

using testing::pattern;
using testing::sha256_of;

// What one follower saw: how its transfer ended, the bytes it got, and whether its first bytes
// came while the fetch was still streaming.
struct Followed {
  bool done = false;
  bool coalesced = false;
  FetchState first_state = FetchState::connecting;
  StreamStatus status = StreamStatus::complete;
  FetchFailure failure;
  bool got_bytes_while_streaming = false;
  std::string bytes;
  int flushes = 0;        // calls of the sink without "more"
  bool last_more = true;  // what the last call said
};

class BlobFetchesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::test_directory("fetches");
    store_ = std::make_unique<LocalBlobStore>(root_.string());
    index_ = MetadataIndex::open((root_ / "metadata.db").string());
    fetches_ = std::make_unique<BlobFetches>(io_, disk_.get_executor(), *store_, *index_, guard_,
                                             clock_, counters_);
  }
  void TearDown() override {
    fetches_.reset();
    disk_.join();
    fs::remove_all(root_);
  }

  // A follower as the request handler is one: join, wait for the header, then stream. The sink
  // stops after `stop_after` bytes when set (a client that goes away).
  asio::awaitable<void> follow(std::string digest, ScriptedUpstream& upstream, Followed& out,
                               std::optional<std::size_t> stop_after = std::nullopt) {
    auto joined = fetches_->join(digest, "quay.io", "e2e/small", upstream);
    out.coalesced = joined.coalesced;
    BlobFetch& fetch = *joined.fetch;
    FetchProgress progress = fetch.progress();
    while (progress.state == FetchState::connecting ||
           (progress.state == FetchState::streaming && !progress.size)) {
      progress = co_await fetch.wait_past(progress);
    }
    out.first_state = progress.state;
    if (progress.state == FetchState::failed) {
      out.status = StreamStatus::fetch_failed;
      out.failure = progress.failure;
      out.done = true;
      co_return;
    }
    auto reader = fetch.reader();
    std::vector<std::uint8_t> buffer(8 * 1024);
    StreamSink sink = [&](std::span<const std::uint8_t> bytes, bool more) -> asio::awaitable<bool> {
      if (fetch.progress().state == FetchState::streaming) out.got_bytes_while_streaming = true;
      out.bytes.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      // "More" promises that the next bytes can be read without waiting for the fetch; the
      // last bytes of the blob never come with it.
      if (more) {
        EXPECT_LT(out.bytes.size(), fetch.progress().sendable);
      } else {
        out.flushes++;
      }
      out.last_more = more;
      co_return !(stop_after && out.bytes.size() >= *stop_after);
    };
    out.status = co_await stream_range(*reader, 0, *progress.size, buffer, sink, &fetch);
    if (out.status == StreamStatus::fetch_failed) out.failure = fetch.progress().failure;
    out.done = true;
  }

  void spawn_follower(const std::string& digest, ScriptedUpstream& upstream, Followed& out,
                      std::optional<std::size_t> stop_after = std::nullopt) {
    asio::co_spawn(asio::make_strand(io_), follow(digest, upstream, out, stop_after),
                   asio::detached);
  }

  std::size_t temp_files() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(root_ / "tmp")) ++n;
    return n;
  }

  fs::path root_;
  asio::io_context io_;
  asio::thread_pool disk_{1};
  core::testing::FakeWallClock clock_;
  BlobFetchCounters counters_;
  std::unique_ptr<LocalBlobStore> store_;
  std::unique_ptr<MetadataIndex> index_;
  ContentGuard guard_;
  std::unique_ptr<BlobFetches> fetches_;
};

ScriptedReply slow_body(const std::string& body) {
  ScriptedReply reply;
  reply.body = body;
  reply.piece = 16 * 1024;
  reply.pace = std::chrono::milliseconds(2);
  return reply;
}

TEST_F(BlobFetchesTest, ConcurrentRequestsShareOneUpstreamFetch) {
  const std::string body = pattern(512 * 1024);
  const std::string digest = sha256_of(body);
  ScriptedUpstream upstream([&](const UpstreamRequest&) { return slow_body(body); });
  std::vector<Followed> followers(8);
  for (auto& f : followers) spawn_follower(digest, upstream, f);
  io_.run();

  EXPECT_EQ(upstream.count(http_verb::get), 1U);
  EXPECT_EQ(upstream.seen().at(0).target, "/v2/e2e/small/blobs/" + digest);
  std::size_t coalesced = 0;
  for (const auto& f : followers) {
    ASSERT_TRUE(f.done);
    EXPECT_EQ(f.status, StreamStatus::complete);
    EXPECT_TRUE(f.bytes == body) << "a follower got " << f.bytes.size() << " bytes";
    coalesced += f.coalesced ? 1 : 0;
  }
  EXPECT_EQ(coalesced, 7U);
  EXPECT_EQ(counters_.coalesced_followers.value(), 7U);
  EXPECT_EQ(counters_.fetches_started.value(), 1U);
  EXPECT_EQ(counters_.fetches_stored.value(), 1U);
  EXPECT_EQ(counters_.bytes_from_upstream.value(), body.size());
  EXPECT_EQ(store_->size(digest), body.size());
  EXPECT_TRUE(index_->blob(digest).has_value());
  EXPECT_TRUE(index_->linked("quay.io", "e2e/small", digest));
  EXPECT_EQ(fetches_->in_flight(), 0U);
}

TEST_F(BlobFetchesTest, FollowersStreamBytesBeforeTheFetchEnds) {
  const std::string body = pattern(256 * 1024);
  const std::string digest = sha256_of(body);
  ScriptedUpstream upstream([&](const UpstreamRequest&) { return slow_body(body); });
  Followed first;
  Followed second;
  spawn_follower(digest, upstream, first);
  spawn_follower(digest, upstream, second);
  io_.run();
  EXPECT_TRUE(first.got_bytes_while_streaming);
  EXPECT_TRUE(second.got_bytes_while_streaming);
  EXPECT_EQ(first.bytes, body);
  EXPECT_EQ(second.bytes, body);
  // Each follower caught up with the fetch and waited for it at least once, and told its sink
  // to send everything before each wait and at the end.
  for (const Followed* f : {&first, &second}) {
    EXPECT_GE(f->flushes, 2);
    EXPECT_FALSE(f->last_more);
  }
}

TEST_F(BlobFetchesTest, DigestMismatchIsNeverStoredAndEveryTransferFails) {
  const std::string body = pattern(200 * 1024);
  std::string corrupted = body;
  corrupted[1000] ^= 0x55;
  const std::string digest = sha256_of(body);
  ScriptedUpstream upstream([&](const UpstreamRequest&) { return slow_body(corrupted); });
  std::vector<Followed> followers(4);
  for (auto& f : followers) spawn_follower(digest, upstream, f);
  io_.run();

  for (const auto& f : followers) {
    ASSERT_TRUE(f.done);
    EXPECT_EQ(f.status, StreamStatus::fetch_failed);
    EXPECT_EQ(f.failure.kind, FetchFailure::Kind::digest_mismatch);
    // The last byte is held back until the digest is known, so no client saw a whole body.
    EXPECT_LT(f.bytes.size(), body.size());
  }
  EXPECT_EQ(counters_.digest_mismatches.value(), 1U);
  EXPECT_EQ(counters_.fetches_failed.value(), 1U);
  EXPECT_FALSE(store_->size(digest).has_value());
  EXPECT_EQ(store_->open(digest), nullptr);
  EXPECT_FALSE(index_->blob(digest).has_value());
  EXPECT_EQ(temp_files(), 0U);
}

TEST_F(BlobFetchesTest, ClientThatDisconnectsDoesNotAbortTheSharedFetch) {
  const std::string body = pattern(256 * 1024);
  const std::string digest = sha256_of(body);
  ScriptedUpstream upstream([&](const UpstreamRequest&) { return slow_body(body); });
  Followed leaver;
  Followed stayer;
  spawn_follower(digest, upstream, leaver, 20 * 1024);
  spawn_follower(digest, upstream, stayer);
  io_.run();
  EXPECT_EQ(leaver.status, StreamStatus::sink_failed);
  EXPECT_EQ(stayer.status, StreamStatus::complete);
  EXPECT_EQ(stayer.bytes, body);
  EXPECT_EQ(upstream.count(http_verb::get), 1U);
  EXPECT_EQ(store_->size(digest), body.size());
}

TEST_F(BlobFetchesTest, FetchContinuesWhenItsOnlyClientLeaves) {
  const std::string body = pattern(128 * 1024);
  const std::string digest = sha256_of(body);
  ScriptedUpstream upstream([&](const UpstreamRequest&) { return slow_body(body); });
  Followed leaver;
  spawn_follower(digest, upstream, leaver, 1);
  io_.run();
  EXPECT_EQ(leaver.status, StreamStatus::sink_failed);
  EXPECT_EQ(store_->size(digest), body.size());
  EXPECT_EQ(counters_.fetches_stored.value(), 1U);
}

TEST_F(BlobFetchesTest, UpstreamNotFoundFailsWithItsStatusAndStoresNothing) {
  const std::string digest = sha256_of("missing");
  ScriptedUpstream upstream([&](const UpstreamRequest&) {
    ScriptedReply reply;
    reply.status = 404;
    reply.body = R"({"errors":[{"code":"BLOB_UNKNOWN"}]})";
    return reply;
  });
  Followed f;
  spawn_follower(digest, upstream, f);
  io_.run();
  EXPECT_EQ(f.first_state, FetchState::failed);
  EXPECT_EQ(f.failure.kind, FetchFailure::Kind::upstream_status);
  EXPECT_EQ(f.failure.status, 404U);
  EXPECT_FALSE(store_->size(digest).has_value());
}

TEST_F(BlobFetchesTest, UnreachableUpstreamFailsWithItsKind) {
  const std::string digest = sha256_of("x");
  ScriptedUpstream upstream([&](const UpstreamRequest&) {
    ScriptedReply reply;
    reply.unreachable = true;
    reply.failure = UpstreamFailure::timeout;
    return reply;
  });
  Followed f;
  spawn_follower(digest, upstream, f);
  io_.run();
  EXPECT_EQ(f.failure.kind, FetchFailure::Kind::upstream_failed);
  EXPECT_EQ(f.failure.upstream, UpstreamFailure::timeout);
}

TEST_F(BlobFetchesTest, BodyBrokenOffMidwayFailsAndStoresNothing) {
  const std::string body = pattern(100 * 1024);
  const std::string digest = sha256_of(body);
  ScriptedUpstream upstream([&](const UpstreamRequest&) {
    auto reply = slow_body(body);
    reply.break_after = 50 * 1024;
    return reply;
  });
  Followed f;
  spawn_follower(digest, upstream, f);
  io_.run();
  EXPECT_EQ(f.status, StreamStatus::fetch_failed);
  EXPECT_EQ(f.failure.kind, FetchFailure::Kind::upstream_failed);
  EXPECT_LE(f.bytes.size(), 50U * 1024);
  EXPECT_FALSE(store_->size(digest).has_value());
  EXPECT_EQ(temp_files(), 0U);
}

TEST_F(BlobFetchesTest, BodyWithoutAnnouncedLengthIsSentOnlyOnceVerified) {
  const std::string body = pattern(64 * 1024);
  const std::string digest = sha256_of(body);
  ScriptedUpstream upstream([&](const UpstreamRequest&) {
    auto reply = slow_body(body);
    reply.announce_length = false;
    return reply;
  });
  Followed f;
  spawn_follower(digest, upstream, f);
  io_.run();
  EXPECT_EQ(f.first_state, FetchState::stored);
  EXPECT_FALSE(f.got_bytes_while_streaming);
  EXPECT_EQ(f.bytes, body);
}

TEST_F(BlobFetchesTest, AFailedFetchIsRetriedByTheNextRequest) {
  const std::string body = pattern(10 * 1024);
  const std::string digest = sha256_of(body);
  int calls = 0;
  ScriptedUpstream upstream([&](const UpstreamRequest&) {
    ScriptedReply reply;
    if (calls++ == 0) {
      reply.status = 503;
    } else {
      reply.body = body;
    }
    return reply;
  });
  Followed first;
  spawn_follower(digest, upstream, first);
  io_.run();
  EXPECT_EQ(first.failure.status, 503U);
  io_.restart();
  Followed second;
  spawn_follower(digest, upstream, second);
  io_.run();
  EXPECT_EQ(second.status, StreamStatus::complete);
  EXPECT_EQ(second.bytes, body);
  EXPECT_EQ(upstream.count(http_verb::get), 2U);
}

TEST_F(BlobFetchesTest, StoppedFetchesRefuseNewWork) {
  bool drained = false;
  fetches_->stop([&] { drained = true; });
  EXPECT_TRUE(drained);
  ScriptedUpstream upstream([&](const UpstreamRequest&) { return ScriptedReply{}; });
  Followed f;
  spawn_follower(sha256_of("x"), upstream, f);
  io_.run();
  EXPECT_EQ(f.failure.kind, FetchFailure::Kind::stopped);
  EXPECT_EQ(upstream.seen().size(), 0U);
}

TEST_F(BlobFetchesTest, StreamRangeServesAStoredBlobInPieces) {
  const std::string body = pattern(40 * 1024 + 3);
  const std::string digest = sha256_of(body);
  auto writer = store_->create(digest, body.size());
  writer->write(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(body.data()),
                                              body.size()));
  ASSERT_EQ(writer->commit().status, CommitStatus::stored);
  auto reader = store_->open(digest);
  std::string got;
  StreamStatus status = StreamStatus::read_failed;
  std::vector<std::uint8_t> buffer(4096);
  std::vector<bool> mores;  // one per call of the sink
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        StreamSink sink = [&](std::span<const std::uint8_t> bytes,
                              bool more) -> asio::awaitable<bool> {
          EXPECT_LE(bytes.size(), 4096U);
          got.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
          mores.push_back(more);
          co_return true;
        };
        status = co_await stream_range(*reader, 100, 30000, buffer, sink);
      },
      asio::detached);
  io_.run();
  EXPECT_EQ(status, StreamStatus::complete);
  EXPECT_EQ(got, body.substr(100, 29900));
  // A stored blob never makes the stream wait: every piece but the last says more follows.
  ASSERT_EQ(mores.size(), 8U);  // 29,900 bytes in pieces of 4,096
  EXPECT_EQ(std::count(mores.begin(), mores.end(), false), 1);
  EXPECT_FALSE(mores.back());
}

}  // namespace
}  // namespace pullthrough::proxy
