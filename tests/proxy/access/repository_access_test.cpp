// What upstream said about repositories: which are public, and which clients it let read which.
#include "proxy/access/repository_access.hpp"

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/core/fake_clock.hpp"

namespace pullthrough::proxy {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

class RepositoryAccessTest : public ::testing::Test {
 protected:
  ClientIdentity identity(std::string_view password) const {
    return hasher_.of_password("user", password);
  }

  core::testing::FakeClock clock_;
  IdentityHasher hasher_{std::array<std::uint8_t, 32>{3}};
};

TEST_F(RepositoryAccessTest, UnknownRepositoryHasUnknownVisibility) {
  RepositoryAccess access(clock_);
  const auto known = access.visibility("quay.io", "org/app", minutes(5));
  EXPECT_EQ(known.visibility, Visibility::unknown);
  EXPECT_FALSE(known.fresh);
}

TEST_F(RepositoryAccessTest, VisibilityIsFreshWithinTheTtl) {
  RepositoryAccess access(clock_);
  access.record_visibility("quay.io", "org/public", true);
  access.record_visibility("quay.io", "org/private", false);

  auto known = access.visibility("quay.io", "org/public", minutes(5));
  EXPECT_EQ(known.visibility, Visibility::public_repository);
  EXPECT_TRUE(known.fresh);
  known = access.visibility("quay.io", "org/private", minutes(5));
  EXPECT_EQ(known.visibility, Visibility::restricted);
  EXPECT_TRUE(known.fresh);

  clock_.advance(minutes(5) - seconds(1));
  EXPECT_TRUE(access.visibility("quay.io", "org/public", minutes(5)).fresh);
  clock_.advance(seconds(1));
  known = access.visibility("quay.io", "org/public", minutes(5));
  // Stale, the last answer still stands until a new check says otherwise.
  EXPECT_EQ(known.visibility, Visibility::public_repository);
  EXPECT_FALSE(known.fresh);
  EXPECT_TRUE(access.visibility("quay.io", "org/public", minutes(6)).fresh);

  access.record_visibility("quay.io", "org/public", false);
  known = access.visibility("quay.io", "org/public", minutes(5));
  EXPECT_EQ(known.visibility, Visibility::restricted);
  EXPECT_TRUE(known.fresh);
}

TEST_F(RepositoryAccessTest, VisibilityIsPerRegistry) {
  RepositoryAccess access(clock_);
  access.record_visibility("quay.io", "org/app", true);
  EXPECT_EQ(access.visibility("ghcr.io", "org/app", minutes(5)).visibility, Visibility::unknown);
  EXPECT_EQ(access.visibility("quay.io", "org/app2", minutes(5)).visibility, Visibility::unknown);
  EXPECT_EQ(access.visibility("quay.io", "org", minutes(5)).visibility, Visibility::unknown);
}

TEST_F(RepositoryAccessTest, GrantIsPerIdentityRegistryAndRepository) {
  RepositoryAccess access(clock_);
  const ClientIdentity alice = identity("alice");
  access.grant(alice, "quay.io", "org/private");
  EXPECT_TRUE(access.granted(alice, "quay.io", "org/private"));
  EXPECT_FALSE(access.granted(identity("bob"), "quay.io", "org/private"));
  EXPECT_FALSE(access.granted(alice, "ghcr.io", "org/private"));
  EXPECT_FALSE(access.granted(alice, "quay.io", "org/other"));
  EXPECT_EQ(access.grants(), 1u);
}

TEST_F(RepositoryAccessTest, GrantWithoutLifetimeLastsMaxGrant) {
  RepositoryAccess access(clock_);
  const ClientIdentity alice = identity("alice");
  access.grant(alice, "quay.io", "org/private");
  clock_.advance(RepositoryAccess::kMaxGrant - seconds(1));
  EXPECT_TRUE(access.granted(alice, "quay.io", "org/private"));
  clock_.advance(seconds(1));
  EXPECT_FALSE(access.granted(alice, "quay.io", "org/private"));
}

TEST_F(RepositoryAccessTest, GrantLastsTheTokensLifetimeWhenShorter) {
  RepositoryAccess access(clock_);
  const ClientIdentity alice = identity("alice");
  access.grant(alice, "quay.io", "short", seconds(30));
  access.grant(alice, "quay.io", "long", seconds(3600));
  clock_.advance(seconds(29));
  EXPECT_TRUE(access.granted(alice, "quay.io", "short"));
  clock_.advance(seconds(1));
  EXPECT_FALSE(access.granted(alice, "quay.io", "short"));
  // An hour-long token still gives at most kMaxGrant.
  clock_.advance(RepositoryAccess::kMaxGrant - seconds(31));
  EXPECT_TRUE(access.granted(alice, "quay.io", "long"));
  clock_.advance(seconds(1));
  EXPECT_FALSE(access.granted(alice, "quay.io", "long"));
}

TEST_F(RepositoryAccessTest, GrantWithNoTimeLeftEndsTheOldGrant) {
  RepositoryAccess access(clock_);
  const ClientIdentity alice = identity("alice");
  access.grant(alice, "quay.io", "r");
  access.grant(alice, "quay.io", "r", seconds(0));
  EXPECT_FALSE(access.granted(alice, "quay.io", "r"));
  EXPECT_EQ(access.grants(), 0u);
}

TEST_F(RepositoryAccessTest, AnonymousClientIsNeverGranted) {
  RepositoryAccess access(clock_);
  const ClientIdentity anonymous;
  access.grant(anonymous, "quay.io", "org/private");
  EXPECT_FALSE(access.granted(anonymous, "quay.io", "org/private"));
  EXPECT_EQ(access.grants(), 0u);
  // Not even when a grant for an identity with the same (all-zero) hash exists.
  ClientIdentity zero_hash;
  zero_hash.anonymous = false;
  access.grant(zero_hash, "quay.io", "org/private");
  EXPECT_TRUE(access.granted(zero_hash, "quay.io", "org/private"));
  EXPECT_FALSE(access.granted(anonymous, "quay.io", "org/private"));
}

TEST_F(RepositoryAccessTest, RevokeEndsTheGrant) {
  RepositoryAccess access(clock_);
  const ClientIdentity alice = identity("alice");
  access.grant(alice, "quay.io", "a");
  access.grant(alice, "quay.io", "b");
  access.revoke(alice, "quay.io", "a");
  EXPECT_FALSE(access.granted(alice, "quay.io", "a"));
  EXPECT_TRUE(access.granted(alice, "quay.io", "b"));
  EXPECT_EQ(access.grants(), 1u);
  access.revoke(alice, "quay.io", "never-granted");
  access.revoke(ClientIdentity{}, "quay.io", "b");
  EXPECT_TRUE(access.granted(alice, "quay.io", "b"));
  // A later grant opens it again.
  access.grant(alice, "quay.io", "a");
  EXPECT_TRUE(access.granted(alice, "quay.io", "a"));
}

TEST_F(RepositoryAccessTest, FullGrantsDropExpiredThenSoonestExpiring) {
  RepositoryAccess access(clock_, 16, 3);
  const ClientIdentity alice = identity("alice");
  access.grant(alice, "h", "expiring", seconds(10));
  access.grant(alice, "h", "long", seconds(300));
  access.grant(alice, "h", "soonest", seconds(100));
  clock_.advance(seconds(20));
  access.grant(alice, "h", "new-1", seconds(200));
  EXPECT_TRUE(access.granted(alice, "h", "soonest"));
  EXPECT_EQ(access.grants(), 3u);
  access.grant(alice, "h", "new-2", seconds(200));
  EXPECT_FALSE(access.granted(alice, "h", "soonest"));
  EXPECT_TRUE(access.granted(alice, "h", "long"));
  EXPECT_TRUE(access.granted(alice, "h", "new-1"));
  EXPECT_TRUE(access.granted(alice, "h", "new-2"));
  EXPECT_EQ(access.grants(), 3u);
}

TEST_F(RepositoryAccessTest, FullRepositoriesDropTheOneCheckedLongestAgo) {
  RepositoryAccess access(clock_, 2, 16);
  access.record_visibility("h", "first", true);
  clock_.advance(seconds(1));
  access.record_visibility("h", "second", true);
  clock_.advance(seconds(1));
  access.record_visibility("h", "first", false);  // checked again: now the newest
  clock_.advance(seconds(1));
  access.record_visibility("h", "third", true);
  EXPECT_EQ(access.repositories(), 2u);
  EXPECT_EQ(access.visibility("h", "second", minutes(5)).visibility, Visibility::unknown);
  EXPECT_EQ(access.visibility("h", "first", minutes(5)).visibility, Visibility::restricted);
  EXPECT_EQ(access.visibility("h", "third", minutes(5)).visibility, Visibility::public_repository);
}

TEST_F(RepositoryAccessTest, BoundsHoldUnderAFloodOfDistinctEntries) {
  RepositoryAccess access(clock_, 8, 32);
  for (int i = 0; i < 10000; ++i) {
    const std::string repository = "flood/" + std::to_string(i);
    access.record_visibility("h", repository, i % 2 == 0);
    access.grant(identity(std::to_string(i % 97)), "h", repository, seconds(1 + i % 400));
    ASSERT_LE(access.repositories(), 8u);
    ASSERT_LE(access.grants(), 32u);
    if (i % 50 == 0) clock_.advance(seconds(1));
  }
  EXPECT_EQ(access.repositories(), 8u);
  // The newest entries are there.
  EXPECT_EQ(access.visibility("h", "flood/9999", minutes(5)).visibility, Visibility::restricted);
}

TEST_F(RepositoryAccessTest, ConcurrentUseKeepsTheBounds) {
  RepositoryAccess access(clock_, 64, 64);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&access, t, this] {
      const ClientIdentity me = identity(std::to_string(t));
      for (int i = 0; i < 2000; ++i) {
        const std::string repository = std::to_string(t) + "/" + std::to_string(i);
        access.record_visibility("h", repository, true);
        access.grant(me, "h", repository);
        (void)access.granted(me, "h", repository);
        (void)access.visibility("h", repository, minutes(1));
        if (i % 3 == 0) access.revoke(me, "h", repository);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_LE(access.grants(), 64u);
  EXPECT_LE(access.repositories(), 64u);
}

}  // namespace
}  // namespace pullthrough::proxy
