// Retention and eviction: which cached content goes, decided from one snapshot of the metadata
// index, and its removal, safe against the proxy's requests and against a crash.
//
// The unit is the reference a client pulls: a tag (`quay.io/org/app:1.2`) or a manifest a
// repository was asked for by digest (`quay.io/org/app@sha256:...`). A reference keeps its
// manifest and, through the manifest's contents, an index's children and an image's config and
// layers (proxy/lifecycle/manifest_references.hpp). A manifest fetched by digest as the child of
// an index that the same repository holds is part of that reference, not one of its own, and its
// use counts as the reference's use (containerd pulls children by digest).
//
// A collection:
//  1. decides each reference: kept when pinned (proxy/lifecycle/pin.hpp), else by the first rule
//     that matches it (keep: forever; expire_unused_after; keep_tags, the most recently used tags
//     of the repository that the rule governs), else kept (no rule, no expiry);
//  2. keeps every object a kept reference reaches, in any repository of any registry, and
//     removes the rest. Content no reference reaches (a blob fetched without its manifest) is
//     judged by the rules of the repositories that fetched it, as untagged content, by its own
//     last use;
//  3. when the store is above storage.max_size, or the disk's free space is near min_free,
//     evicts least recently used references (never pinned or kept forever) until the bytes left
//     are at storage.low_watermark or the free space is back: first the content no reference
//     reaches, then whole references, oldest last use first. An object goes when the last kept
//     reference to it does, so shared layers are counted once;
//  4. removes, in batches: each object is marked in the ContentGuard (skipped while a client
//     reads it or a fetch writes it), its rows are deleted and journaled in one transaction, its
//     bytes deleted, and the journal cleared. A crash between the two leaves journaled objects
//     without rows, and finish_removals() deletes their bytes at the next start.
//
// Memory: the snapshot is held as 64-bit keys and integers, not digest strings (about 60 bytes
// per object), so a million objects fit in well under the 256 MiB the issue allows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/blob_store.hpp"
#include "proxy/lifecycle/content_guard.hpp"
#include "proxy/metadata_index.hpp"

namespace pullthrough::proxy {

struct RetentionPolicy {
  std::vector<config::RetentionRule> rules;
  std::uint64_t max_size = 0;       // 0: no bound
  std::uint64_t low_watermark = 0;  // where eviction for max_size stops
  // Bytes the disk needs back (free space near min_free): evicted beyond what the rules free.
  std::uint64_t free_up = 0;
};

enum class RemovalCause : std::uint8_t {
  expired,        // unused for longer than its rule allows
  too_many_tags,  // beyond its rule's keep_tags
  evicted,        // the size bound or the free space
  requested,      // `cache rm`
};
std::string_view to_string(RemovalCause cause);

// A reference that goes (its tag, or the repository's link to the digest).
struct ReferenceRemoval {
  std::string registry;
  std::string repository;
  std::string tag;     // empty for a reference by digest
  std::string digest;  // the manifest the reference names (for a tag, the canonical one)
  RemovalCause cause = RemovalCause::expired;
  std::string reason;  // one line for the log and `cache gc`
  // A repository's link to a manifest of a removed reference (made when it was pulled): it goes
  // with the reference and is not a reference of its own in counts and listings.
  bool implied = false;
  std::string ref() const;  // host/repository:tag or host/repository@digest
};

struct ObjectRemoval {
  std::string digest;
  std::uint64_t size = 0;
  bool manifest = false;
  RemovalCause cause = RemovalCause::expired;
  std::string reason;
};

struct CollectionPlan {
  // Set when nothing may be decided yet (manifests whose contents are not known).
  std::string blocked;
  std::vector<ReferenceRemoval> references;
  std::vector<ObjectRemoval> objects;
  std::uint64_t stored_bytes = 0;  // manifests and blobs in the snapshot
  std::uint64_t pinned_bytes = 0;  // reached from pinned or kept-forever references
  std::uint64_t bytes_freed = 0;   // by `objects`
  // Eviction wanted more than could go without touching pinned content.
  std::uint64_t shortfall = 0;
};

// A cached reference, as `cache ls` shows it.
struct ReferenceReport {
  std::string ref;
  std::string digest;
  std::uint64_t size = 0;         // everything it reaches
  std::uint64_t unique_size = 0;  // what no other reference reaches
  UnixSeconds last_used = 0;
  bool pinned = false;
  std::string rule;  // "pin <pattern>", "rule <n>: <match>", or empty when none applies
};

struct UsageReport {
  std::uint64_t total = 0;
  std::uint64_t pinned = 0;     // reached from pinned or kept-forever references
  std::uint64_t evictable = 0;  // total - pinned
  // Per registry: what its references reach (shared bytes count in each registry using them).
  std::vector<std::pair<std::string, std::uint64_t>> by_registry;
};

class Collector {
 public:
  static CollectionPlan plan(const MetadataSnapshot& snapshot, const RetentionPolicy& policy,
                             UnixSeconds now);
  // The plan of `cache rm REF`: the references REF names (a tag, a digest reference, or a glob),
  // and what goes with them that no other reference keeps (no references: nothing matched). Pins
  // do not protect from it. `error` is set for a REF that is not a pin pattern (pin.hpp).
  static CollectionPlan plan_removal(const MetadataSnapshot& snapshot, std::string_view ref,
                                     std::string& error);

  // The references `glob` matches (all when empty), in ref order.
  static std::vector<ReferenceReport> references(const MetadataSnapshot& snapshot,
                                                 const RetentionPolicy& policy, UnixSeconds now,
                                                 std::string_view glob, std::string& error);
  static UsageReport usage(const MetadataSnapshot& snapshot, const RetentionPolicy& policy,
                           UnixSeconds now);

  struct Applied {
    std::size_t objects_removed = 0;
    std::size_t objects_busy = 0;  // skipped: in use, or written since the snapshot
    std::size_t references_removed = 0;
    std::uint64_t bytes_freed = 0;
  };
  // Carries out `plan` (see step 4 above). `forget` is told of the references once their rows
  // are gone, then of each batch of objects once their rows are gone and before their bytes go,
  // so the proxy drops what it holds of exactly those in memory. Blocks on I/O: the disk pool
  // only.
  static Applied apply(const CollectionPlan& plan, MetadataIndex& index, BlobStore& store,
                       ContentGuard& guard, UnixSeconds now,
                       const std::function<void(const RemovalBatch&)>& forget = {});

  // Deletes the bytes of journaled objects whose rows are gone (a collection that crashed) and
  // clears the journal; returns how many. At start, before the proxy serves.
  static std::size_t finish_removals(MetadataIndex& index, BlobStore& store);
};

}  // namespace pullthrough::proxy
