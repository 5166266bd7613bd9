// A bounded cache of DNS answers: each entry lives for its TTL, may then be served stale for a
// while when upstreams fail (RFC 8767), and the least recently used entry goes first when the
// cache is full. Sharded so that lookups from several threads rarely meet on one lock; eviction
// is least-recently-used within a shard, and the shards together never hold more than
// max_entries.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.hpp"

namespace pullthrough::dns {

// RFC 2308 and RFC 8767 both key on the question; the DO bit splits answers with and without
// DNSSEC records.
struct CacheKey {
  std::string name;  // lower case
  std::uint16_t type = 0;
  std::uint16_t klass = 1;
  bool dnssec_ok = false;
  bool operator==(const CacheKey&) const = default;
};

// The same key pointing at a name it does not own: looking up costs no allocation.
struct CacheKeyView {
  std::string_view name;
  std::uint16_t type = 0;
  std::uint16_t klass = 1;
  bool dnssec_ok = false;
};

inline CacheKeyView view_of(const CacheKey& key) {
  return {key.name, key.type, key.klass, key.dnssec_ok};
}
inline const CacheKeyView& view_of(const CacheKeyView& key) { return key; }

struct CacheKeyHash {
  using is_transparent = void;
  template <typename Key>
  std::size_t operator()(const Key& any) const {
    CacheKeyView key = view_of(any);
    std::size_t h = std::hash<std::string_view>{}(key.name);
    h ^= (static_cast<std::size_t>(key.type) << 17) ^ (static_cast<std::size_t>(key.klass) << 1) ^
         static_cast<std::size_t>(key.dnssec_ok);
    return h * 0x9E3779B97F4A7C15ULL;
  }
};

struct CacheKeyEqual {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a_any, const B& b_any) const {
    CacheKeyView a = view_of(a_any);
    CacheKeyView b = view_of(b_any);
    return a.name == b.name && a.type == b.type && a.klass == b.klass && a.dnssec_ok == b.dnssec_ok;
  }
};

template <typename Value>
class TtlCache {
 public:
  using Duration = std::chrono::steady_clock::duration;

  struct Hit {
    std::shared_ptr<const Value> value;
    Duration age;        // since insertion: subtract from the stored TTLs
    bool stale = false;  // past its TTL, inside the serve-stale window
  };

  // max_entries 0 disables the cache. `clock` must outlive the cache.
  TtlCache(std::size_t max_entries, Duration serve_stale, const core::Clock& clock)
      : shard_count_(std::clamp<std::size_t>(max_entries / kMinPerShard, 1, kMaxShards)),
        per_shard_(max_entries / shard_count_),
        serve_stale_(serve_stale),
        clock_(clock),
        shards_(std::make_unique<Shard[]>(shard_count_)) {}

  // Replaces any entry for `key`. An entry with a TTL of zero is not stored (RFC 1035 section
  // 3.2.1: zero means "use only for this transaction").
  void insert(const CacheKey& key, std::shared_ptr<const Value> value, Duration ttl) {
    if (per_shard_ == 0 || ttl <= Duration::zero()) return;
    auto& shard = shard_for(key);
    auto now = clock_.now();
    std::lock_guard lock(shard.mutex);
    auto it = shard.index.find(key);
    if (it != shard.index.end()) {
      shard.lru.erase(it->second);
      shard.index.erase(it);
    }
    shard.lru.push_front(Entry{key, std::move(value), now, now + ttl});
    shard.index.emplace(key, shard.lru.begin());
    while (shard.index.size() > per_shard_) {
      shard.index.erase(shard.lru.back().key);
      shard.lru.pop_back();
      ++shard.evictions;
    }
  }

  // A fresh entry, or a stale one when `allow_stale` and it expired less than serve_stale ago.
  // Entries past the stale window are dropped on sight.
  template <typename Key>  // CacheKey or CacheKeyView
  std::optional<Hit> lookup(const Key& key, bool allow_stale) {
    if (per_shard_ == 0) return std::nullopt;
    auto& shard = shard_for(key);
    auto now = clock_.now();
    std::lock_guard lock(shard.mutex);
    auto it = shard.index.find(key);
    if (it == shard.index.end()) return std::nullopt;
    Entry& entry = *it->second;
    bool stale = now >= entry.expires;
    if (stale && now >= entry.expires + serve_stale_) {
      shard.lru.erase(it->second);
      shard.index.erase(it);
      return std::nullopt;
    }
    if (stale && !allow_stale) return std::nullopt;
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
    return Hit{entry.value, now - entry.inserted, stale};
  }

  std::size_t size() const {
    std::size_t total = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      std::lock_guard lock(shards_[i].mutex);
      total += shards_[i].index.size();
    }
    return total;
  }

  std::uint64_t evictions() const {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      std::lock_guard lock(shards_[i].mutex);
      total += shards_[i].evictions;
    }
    return total;
  }

  // At most the max_entries it was built with.
  std::size_t capacity() const { return per_shard_ * shard_count_; }

 private:
  static constexpr std::size_t kMaxShards = 16;
  // Small caches keep one shard, and with it strict LRU order.
  static constexpr std::size_t kMinPerShard = 1024;

  struct Entry {
    CacheKey key;
    std::shared_ptr<const Value> value;
    core::Clock::TimePoint inserted;
    core::Clock::TimePoint expires;
  };

  struct Shard {
    mutable std::mutex mutex;
    std::list<Entry> lru;  // most recently used first
    std::unordered_map<CacheKey, typename std::list<Entry>::iterator, CacheKeyHash, CacheKeyEqual>
        index;
    std::uint64_t evictions = 0;
  };

  template <typename Key>
  Shard& shard_for(const Key& key) {
    return shards_[CacheKeyHash{}(key) % shard_count_];
  }

  std::size_t shard_count_;
  std::size_t per_shard_;
  Duration serve_stale_;
  const core::Clock& clock_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace pullthrough::dns
