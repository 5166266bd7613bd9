// What the cache knows about the content it holds, apart from the bytes themselves (those live
// content-addressed behind the storage interface): which digest a tag named when upstream last
// confirmed it, each manifest's media type and size, each blob's size and access times, and which
// repository referenced which digest, and what upstream said about access (which repositories
// anonymous access can read, how each registry challenges clients). The proxy asks it per request;
// it can also say which blobs were used least recently and how many bytes the cache holds, for
// eviction (not built yet).
//
// Backed by SQLite 3 because it gives atomic transactions, survives a crash of the process or the
// machine without corruption (WAL journal), keeps everything in one file next to the store, can
// answer "oldest access first" and "total size" from an index instead of a walk over the store,
// and needs no server to run or supervise.
//
// Thread-safe: one connection serialised by a mutex. The proxy's requests are short point reads
// and writes, so a single connection does not become the bottleneck before the network does.
#pragma once

#include <utility>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "proxy/media_types.hpp"

namespace pullthrough::proxy {

// Wall-clock seconds since the epoch, passed in by the caller (tests use fixed values).
using UnixSeconds = std::int64_t;

inline UnixSeconds unix_seconds(const core::WallClock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count();
}

struct TagRecord {
  std::string digest;
  UnixSeconds confirmed_at = 0;  // when upstream last said the tag names `digest`
};

struct ManifestRecord {
  std::string media_type;
  std::uint64_t size = 0;
};

struct BlobRecord {
  std::uint64_t size = 0;
  UnixSeconds stored_at = 0;    // first put; a re-put does not move it
  UnixSeconds last_access = 0;  // never moves backwards, see touch_blob
};

// What upstream said last about anonymous access to a repository (proxy/access/).
struct VisibilityRecord {
  bool is_public = false;
  UnixSeconds checked_at = 0;
};

// A registry's last answer to `GET /v2/` for a client without credentials.
struct BaseAnswerRecord {
  unsigned status = 200;
  std::vector<std::string> challenges;  // WWW-Authenticate values as upstream sent them
  UnixSeconds seen_at = 0;
};

// Every method except open() throws std::runtime_error naming the database file when SQLite
// reports an error (disk full, I/O error, lock held by another process past the busy timeout).
// Strings are stored and compared byte for byte; sizes above INT64_MAX are refused.
class MetadataIndex {
 public:
  // Opens or creates the database file; throws std::runtime_error naming the file on failure
  // (including a file that is not a SQLite database, or a schema from a newer version).
  static std::unique_ptr<MetadataIndex> open(const std::string& path);
  ~MetadataIndex();
  MetadataIndex(const MetadataIndex&) = delete;
  MetadataIndex& operator=(const MetadataIndex&) = delete;

  // Inserts or overwrites the digest and confirmation time of the tag as upstream answers a
  // request that accepts the manifest types `types` (see ManifestTypeSet; not empty).
  void put_tag(const std::string& registry, const std::string& repository, const std::string& tag,
               const std::string& digest, UnixSeconds confirmed_at,
               ManifestTypeSet types = kAllManifestTypes);
  std::optional<TagRecord> tag(const std::string& registry, const std::string& repository,
                               const std::string& tag,
                               ManifestTypeSet types = kAllManifestTypes) const;
  // The repository's tags (each once, whatever types they were asked with) in byte order (what
  // std::sort gives for std::string).
  std::vector<std::string> tags(const std::string& registry, const std::string& repository) const;

  // Inserts or overwrites.
  void put_manifest(const std::string& digest, const std::string& media_type, std::uint64_t size);
  std::optional<ManifestRecord> manifest(const std::string& digest) const;

  // First put: size, stored_at and last_access = stored_at. A re-put (the blob was fetched
  // again) updates size and last_access as touch_blob(digest, stored_at) would, and keeps the
  // original stored_at.
  void put_blob(const std::string& digest, std::uint64_t size, UnixSeconds stored_at);
  std::optional<BlobRecord> blob(const std::string& digest) const;
  // Raises last_access to `when`; an older `when` (a request that finished late, a clock step)
  // is ignored so retention never sees a blob as older than it is. No-op if the blob is unknown.
  void touch_blob(const std::string& digest, UnixSeconds when);
  // touch_blob for each (digest, when), in one transaction: all of them or, on an error, none.
  void touch_blobs(const std::vector<std::pair<std::string, UnixSeconds>>& accesses);
  // Removes the blob's record; links naming the digest stay, since they record what upstream
  // served to a repository, not what the store currently holds.
  void forget_blob(const std::string& digest);

  // Records that the repository referenced the digest (blob or manifest). Idempotent.
  void link(const std::string& registry, const std::string& repository, const std::string& digest);
  bool linked(const std::string& registry, const std::string& repository,
              const std::string& digest) const;

  // Inserts or overwrites.
  void put_visibility(const std::string& registry, const std::string& repository, bool is_public,
                      UnixSeconds checked_at);
  std::optional<VisibilityRecord> visibility(const std::string& registry,
                                             const std::string& repository) const;
  // Inserts or overwrites; a challenge value with a line break is refused.
  void put_base_answer(const std::string& registry, const BaseAnswerRecord& answer);
  std::optional<BaseAnswerRecord> base_answer(const std::string& registry) const;

  // For retention: blobs by least recent access first (ties by digest), up to `limit`.
  std::vector<std::pair<std::string, BlobRecord>> least_recently_used(std::size_t limit) const;
  std::uint64_t total_blob_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit MetadataIndex(std::unique_ptr<Impl> impl);
};

}  // namespace pullthrough::proxy
