// What the cache knows about the content it holds, apart from the bytes themselves (those live
// content-addressed behind the storage interface): which digest a tag named when upstream last
// confirmed it, each manifest's media type and size, each blob's size and access times, and which
// repository referenced which digest, and what upstream said about access (which repositories
// anonymous access can read, how each registry challenges clients). The proxy asks it per request.
// For retention (proxy/lifecycle/) it also keeps when each tag, repository reference and blob was
// last used, what each manifest keeps alive, the pins, and the journal of removals in progress;
// a collection reads all of it through a MetadataSnapshot, on a connection of its own.
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
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

// A use of cached content, recorded for retention (see proxy/lifecycle/access_recorder.hpp).
struct ContentUse {
  enum class Kind : std::uint8_t {
    blob,      // `name` is the digest; blobs keep one last use, whatever the repository
    tag,       // `name` is the tag of `repository`
    manifest,  // `name` is a manifest digest that `repository` referenced
  };
  Kind kind = Kind::blob;
  std::string registry;    // tag and manifest
  std::string repository;  // tag and manifest
  std::string name;
  UnixSeconds when = 0;
};

// A pin: content that `pattern` (a reference, `repo@digest` or a glob; see
// proxy/lifecycle/pin.hpp) names is never expired or evicted.
struct PinRecord {
  std::string pattern;
  UnixSeconds created_at = 0;
  UnixSeconds expires_at = 0;  // 0: never (prefetch pins until its next refresh)
  std::string source;          // "cli", "prefetch"
  bool operator==(const PinRecord&) const = default;
};

// What one step of a collection removes from the index (see MetadataIndex::begin_removal).
struct RemovalBatch {
  struct Tag {
    std::string registry, repository, tag;
  };
  struct Link {
    std::string registry, repository, digest;
  };
  std::vector<std::string> objects;  // blobs and manifests whose bytes go
  std::vector<Tag> tags;             // tags that expired (every manifest type set)
  std::vector<Link> links;           // repository references that expired
};

class MetadataSnapshot;

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

  // Inserts or overwrites, with what the manifest keeps alive (its children, config, layers and
  // subject: proxy/lifecycle/manifest_references.hpp), in one transaction.
  void put_manifest(const std::string& digest, const std::string& media_type, std::uint64_t size,
                    const std::vector<std::string>& contents);
  // Inserts or overwrites; the contents of a new manifest stay unknown until set_contents().
  void put_manifest(const std::string& digest, const std::string& media_type, std::uint64_t size);
  // Manifests whose contents are not known (stored by an older version), up to `limit`.
  std::vector<std::string> manifests_without_contents(std::size_t limit) const;
  // Records the contents and marks them known; no-op for a manifest the index does not hold.
  void set_contents(const std::string& manifest, const std::vector<std::string>& contents);
  std::vector<std::string> contents(const std::string& manifest) const;
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

  // Records that the repository referenced the digest (blob or manifest), used `when`.
  // Idempotent; the last use never moves backwards.
  void link(const std::string& registry, const std::string& repository, const std::string& digest,
            UnixSeconds when = 0);
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

  // Each use as touch_blob would (blobs) or likewise on the tag's or link's last use, in one
  // transaction: all of them or, on an error, none. Unknown content is skipped.
  void record_uses(const std::vector<ContentUse>& uses);
  // The tag's last use (over every manifest type set), if the tag is known.
  std::optional<UnixSeconds> tag_last_used(const std::string& registry,
                                           const std::string& repository,
                                           const std::string& tag) const;
  std::optional<UnixSeconds> link_last_used(const std::string& registry,
                                            const std::string& repository,
                                            const std::string& digest) const;

  // Inserts or overwrites the pin of record.pattern; true when it is new.
  bool put_pin(const PinRecord& record);
  bool remove_pin(const std::string& pattern);
  std::vector<PinRecord> pins() const;  // by pattern

  // A collection's removal, in two steps around the deletion of the bytes. begin_removal(), in
  // one transaction, journals the objects and deletes their rows (blobs, manifests, contents,
  // links, tags naming them) and the batch's expired tags and links: from then on the index
  // says they are gone. end_removal() clears the journal once the bytes are deleted. After a
  // crash in between, pending_removals() names what the next start must finish.
  void begin_removal(const RemovalBatch& batch, UnixSeconds now);
  void end_removal(const std::vector<std::string>& objects);
  std::vector<std::string> pending_removals() const;
  // True when the index holds a blob or manifest row for the digest.
  bool holds(const std::string& digest) const;

  // A consistent read-only view for a collection, on its own connection: scans it makes do not
  // hold up the proxy's requests, and writes that land meanwhile are not in it.
  std::unique_ptr<MetadataSnapshot> snapshot() const;

  // For retention: blobs by least recent access first (ties by digest), up to `limit`.
  std::vector<std::pair<std::string, BlobRecord>> least_recently_used(std::size_t limit) const;
  std::uint64_t total_blob_bytes() const;
  // Blobs and manifests: what the store holds (a digest held as both counts once).
  std::uint64_t total_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit MetadataIndex(std::unique_ptr<Impl> impl);
};

// Every scan calls `row` once per row, in key order. The views are valid during the call only.
class MetadataSnapshot {
 public:
  ~MetadataSnapshot();
  MetadataSnapshot(const MetadataSnapshot&) = delete;
  MetadataSnapshot& operator=(const MetadataSnapshot&) = delete;

  void manifests(const std::function<void(std::string_view digest, std::uint64_t size,
                                          bool contents_known)>& row) const;
  void blobs(const std::function<void(std::string_view digest, const BlobRecord&)>& row) const;
  void contents(
      const std::function<void(std::string_view manifest, std::string_view digest)>& row) const;
  // Once per tag and manifest type set.
  void tags(const std::function<void(std::string_view registry, std::string_view repository,
                                     std::string_view tag, std::string_view digest,
                                     UnixSeconds last_used)>& row) const;
  void links(const std::function<void(std::string_view registry, std::string_view repository,
                                      std::string_view digest, UnixSeconds last_used)>& row) const;
  std::vector<PinRecord> pins() const;

  // How many rows each scan above gives, for sizing what is built from them.
  struct Counts {
    std::size_t manifests = 0, blobs = 0, contents = 0, links = 0;
  };
  Counts counts() const;

 private:
  friend class MetadataIndex;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit MetadataSnapshot(std::unique_ptr<Impl> impl);
};

}  // namespace pullthrough::proxy
