#include "dns/ttl_cache.hpp"

#include <gtest/gtest.h>

#include "tests/core/fake_clock.hpp"

namespace pullthrough::dns {
namespace {

using std::chrono::seconds;

CacheKey key(const std::string& name, std::uint16_t type = 1, bool dnssec_ok = false) {
  return CacheKey{name, type, 1, dnssec_ok};
}

std::shared_ptr<const int> value(int v) { return std::make_shared<const int>(v); }

class TtlCacheTest : public ::testing::Test {
 protected:
  core::testing::FakeClock clock_;
};

TEST_F(TtlCacheTest, FreshUntilTtlThenGone) {
  TtlCache<int> cache(100, seconds(0), clock_);
  cache.insert(key("a.example"), value(1), seconds(10));
  clock_.advance(seconds(9));
  auto hit = cache.lookup(key("a.example"), false);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit->value, 1);
  EXPECT_EQ(hit->age, seconds(9));
  EXPECT_FALSE(hit->stale);
  clock_.advance(seconds(1));
  EXPECT_FALSE(cache.lookup(key("a.example"), false));
  EXPECT_FALSE(cache.lookup(key("a.example"), true));
}

TEST_F(TtlCacheTest, KeyIncludesTypeClassAndDoBit) {
  TtlCache<int> cache(100, seconds(0), clock_);
  cache.insert(key("a.example", 1), value(1), seconds(10));
  cache.insert(key("a.example", 28), value(28), seconds(10));
  cache.insert(key("a.example", 1, true), value(100), seconds(10));
  EXPECT_EQ(*cache.lookup(key("a.example", 1), false)->value, 1);
  EXPECT_EQ(*cache.lookup(key("a.example", 28), false)->value, 28);
  EXPECT_EQ(*cache.lookup(key("a.example", 1, true), false)->value, 100);
  EXPECT_FALSE(cache.lookup(CacheKey{"a.example", 1, 3, false}, false));
}

TEST_F(TtlCacheTest, StaleServedOnlyWhenAskedAndWithinTheWindow) {
  TtlCache<int> cache(100, seconds(30), clock_);
  cache.insert(key("a.example"), value(7), seconds(10));
  clock_.advance(seconds(15));
  EXPECT_FALSE(cache.lookup(key("a.example"), false));
  auto stale = cache.lookup(key("a.example"), true);
  ASSERT_TRUE(stale);
  EXPECT_TRUE(stale->stale);
  EXPECT_EQ(*stale->value, 7);
  clock_.advance(seconds(25));  // 40 s after insertion: 10 s TTL + 30 s window passed
  EXPECT_FALSE(cache.lookup(key("a.example"), true));
  EXPECT_EQ(cache.size(), 0U);
}

TEST_F(TtlCacheTest, LeastRecentlyUsedGoesFirst) {
  TtlCache<int> cache(3, seconds(0), clock_);
  cache.insert(key("a"), value(1), seconds(60));
  cache.insert(key("b"), value(2), seconds(60));
  cache.insert(key("c"), value(3), seconds(60));
  ASSERT_TRUE(cache.lookup(key("a"), false));  // a is now the most recently used
  cache.insert(key("d"), value(4), seconds(60));
  EXPECT_TRUE(cache.lookup(key("a"), false));
  EXPECT_FALSE(cache.lookup(key("b"), false));
  EXPECT_TRUE(cache.lookup(key("c"), false));
  EXPECT_TRUE(cache.lookup(key("d"), false));
  EXPECT_EQ(cache.evictions(), 1U);
}

TEST_F(TtlCacheTest, LargeCachesAreShardedWithinTheBound) {
  TtlCache<int> cache(100000, seconds(0), clock_);
  EXPECT_LE(cache.capacity(), 100000U);
  EXPECT_GE(cache.capacity(), 99990U);
  for (int i = 0; i < 120000; ++i)
    cache.insert(key("n" + std::to_string(i)), value(i), seconds(60));
  EXPECT_LE(cache.size(), 100000U);
  EXPECT_GE(cache.evictions(), 20000U);
}

TEST_F(TtlCacheTest, CapacityNeverExceedsMaxEntries) {
  for (std::size_t max : {1U, 2U, 10U, 15U, 16U, 17U, 100U, 100000U}) {
    TtlCache<int> cache(max, seconds(0), clock_);
    EXPECT_LE(cache.capacity(), max) << max;
    for (std::size_t i = 0; i < max * 3 && i < 5000; ++i) {
      cache.insert(key("x" + std::to_string(i)), value(1), seconds(60));
    }
    EXPECT_LE(cache.size(), max) << max;
  }
}

TEST_F(TtlCacheTest, ZeroMaxEntriesDisablesTheCache) {
  TtlCache<int> cache(0, seconds(30), clock_);
  cache.insert(key("a"), value(1), seconds(60));
  EXPECT_FALSE(cache.lookup(key("a"), true));
}

TEST_F(TtlCacheTest, ZeroTtlIsNotStored) {
  TtlCache<int> cache(10, seconds(30), clock_);
  cache.insert(key("a"), value(1), seconds(0));
  EXPECT_FALSE(cache.lookup(key("a"), true));
}

TEST_F(TtlCacheTest, InsertReplaces) {
  TtlCache<int> cache(10, seconds(0), clock_);
  cache.insert(key("a"), value(1), seconds(5));
  clock_.advance(seconds(4));
  cache.insert(key("a"), value(2), seconds(5));
  clock_.advance(seconds(4));
  auto hit = cache.lookup(key("a"), false);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit->value, 2);
  EXPECT_EQ(hit->age, seconds(4));
  EXPECT_EQ(cache.size(), 1U);
}

}  // namespace
}  // namespace pullthrough::dns
