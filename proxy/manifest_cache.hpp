// Manifests and tags: what a pull asks for first, and the only part of a pull whose answer can
// change upstream (a tag moves; a digest never does).
//
//  - A manifest is stored by digest, verified, in the BlobStore, with its media type in the
//    metadata index. By digest it is served from the cache forever after.
//  - A tag -> digest mapping is served without asking upstream while younger than the registry's
//    manifest_ttl. After that it is revalidated with a HEAD upstream (cheap, and not counted
//    against Docker Hub's pull limit); if the digest is unchanged only the confirmation time
//    moves. If upstream cannot be reached, times out, or answers 5xx or 429, the last known
//    mapping is served anyway (stale-if-error), counted and logged.
//  - The client's Accept is honoured: a cached manifest of a type the client did not ask for is
//    never served. A tag's mapping is kept per set of accepted manifest types (upstream may name
//    another manifest for a client that takes fewer types), so a client with a narrow Accept is
//    served from the cache too: from the canonical mapping when its manifest suits the client,
//    else from the mapping made for exactly the client's set.
//  - Nothing cached and upstream unreachable: an immediate 503 with a clear error.
#pragma once

#include "core/asio.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/counters.hpp"
#include "proxy/blob_store.hpp"
#include "proxy/lifecycle/access_recorder.hpp"
#include "proxy/lifecycle/content_guard.hpp"
#include "proxy/media_types.hpp"
#include "proxy/metadata_index.hpp"
#include "proxy/oci_error.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

#define PULLTHROUGH_MANIFEST_COUNTERS(COUNTER)                                               \
  COUNTER(manifest_hits, "manifest requests answered from the cache")                        \
  COUNTER(manifest_misses, "manifest requests that fetched the manifest upstream")           \
  COUNTER(tag_revalidations, "expired tag mappings checked upstream with a HEAD")            \
  COUNTER(tag_revalidations_unchanged, "revalidated tags whose digest had not changed")      \
  COUNTER(stale_tags_served, "tag mappings served stale because upstream failed")            \
  COUNTER(manifest_digest_mismatches, "manifests from upstream that did not match a digest") \
  COUNTER(manifests_unavailable, "manifest requests answered 503: not cached, upstream down")

struct ManifestCounters {
  PULLTHROUGH_MANIFEST_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_MANIFEST_COUNTERS)
};

// The largest manifest accepted from upstream (the distribution registry's own limit).
inline constexpr std::size_t kMaxManifestBytes = std::size_t{4} * 1024 * 1024;

struct ManifestRequest {
  const config::RegistryConfig* registry = nullptr;
  RegistryUpstream* upstream = nullptr;
  std::string repository;
  std::string reference;  // a tag or a digest that passed the route's checks
  bool by_digest = false;
  std::string accept;  // the client's Accept, all its fields joined with ", "
  bool want_body = true;
  // On whose behalf upstream is asked (see proxy/api/access_check.hpp).
  UpstreamCredentials credentials;
};

struct ManifestAnswer {
  // Set when there is a manifest to answer with.
  bool found = false;
  std::string digest;
  std::string media_type;
  std::uint64_t size = 0;
  std::string body;  // when want_body
  bool stale = false;

  // Otherwise: the error to answer with. `retry_after` is passed on from an upstream 429/503.
  OciError error = OciError::manifest_unknown;
  std::string message;
  std::string retry_after;
};

class ManifestCache {
 public:
  // Everything must outlive the cache, and `index` the work queued on `disk`, which runs the
  // blocking work (storing, index writes); `recorder` is told of every hit, `guard` of every
  // manifest being stored.
  ManifestCache(BlobStore& store, MetadataIndex& index, AccessRecorder& recorder,
                ContentGuard& guard, const core::WallClock& clock,
                boost::asio::any_io_executor disk, ManifestCounters& counters);

  // Called with the size of each manifest stored (for the size bound); set before serving.
  void on_stored(std::function<void(std::uint64_t)> stored) { stored_ = std::move(stored); }

  // A collection removed these rows: the memory copies of the removed manifests, of the removed
  // tags (of every type set) and of the links of removed references and objects are dropped, so
  // nothing removed is served from memory. The rest stays, so pulls of what is kept do not wait
  // on the index while a collection writes it. (Every tag naming a removed manifest is itself
  // among the removed references.)
  void forget(const RemovalBatch& removed);

  boost::asio::awaitable<ManifestAnswer> get(ManifestRequest request);

  // A manifest a client pushed and upstream accepted, whose bytes hash to `digest`: stored and
  // linked to the repository, and with a `tag`, the tag's mapping for clients that accept every
  // manifest type now names it. A failure to store costs the cache, not the push, and is logged.
  boost::asio::awaitable<void> put_pushed(const config::RegistryConfig& registry,
                                          const std::string& repository, const std::string& tag,
                                          const std::string& digest, const std::string& media_type,
                                          std::string body);

 private:
  struct Cached {
    std::string media_type;
    std::string body;
  };
  // The manifest from memory, else from the store (then remembered); nullptr when not cached.
  boost::asio::awaitable<std::shared_ptr<const Cached>> cached(const std::string& digest);
  std::shared_ptr<const Cached> remember(const std::string& digest, std::string media_type,
                                         std::string body);
  // The tag's mapping as made for requests accepting `types` (see ManifestTypeSet).
  std::optional<TagRecord> tag_of(const std::string& host, const ManifestRequest& request,
                                  ManifestTypeSet types);
  // The tag's mapping in memory, confirmed now (keep() and get() write the index).
  void remember_tag(const std::string& host, const ManifestRequest& request,
                    const std::string& digest, ManifestTypeSet types);
  // On the disk pool: stores verified manifest bytes unless already stored, then its index rows
  // (the manifest and its contents, the repository's link, and with a tag the tag's mapping for
  // `types`), all as a use at `now`.
  boost::asio::awaitable<void> keep(const std::string& host, const std::string& repository,
                                    const std::string& tag, ManifestTypeSet types,
                                    const std::string& digest, const std::string& media_type,
                                    const std::string& body);
  bool is_linked(const std::string& host, const std::string& repository, const std::string& digest);
  static std::string tag_key(std::string_view host, std::string_view repository,
                             std::string_view tag, ManifestTypeSet types);
  // The answer for an upstream status other than 200 (to a GET or a HEAD of the manifest).
  ManifestAnswer refused(const ManifestRequest& request, unsigned status,
                         const boost::beast::http::response_header<>& header);
  boost::asio::awaitable<ManifestAnswer> fetch(const ManifestRequest& request,
                                               std::string_view accept);
  boost::asio::awaitable<ManifestAnswer> answer_cached(const ManifestRequest& request,
                                                       const std::string& digest, bool stale);

  BlobStore& store_;
  MetadataIndex& index_;
  AccessRecorder& recorder_;
  ContentGuard& guard_;
  const core::WallClock& clock_;
  std::function<void(std::uint64_t)> stored_;
  boost::asio::any_io_executor disk_;
  ManifestCounters& counters_;
  std::shared_ptr<spdlog::logger> log_;

  // A write-through copy of what the metadata index and store hold for manifests and tags, so a
  // pull by tag is answered from memory: the index stays the truth across restarts. Each part is
  // bounded (bytes, or entries: the tag and link sets are simply emptied when full).
  static constexpr std::size_t kHotManifestBytes = std::size_t{16} * 1024 * 1024;
  static constexpr std::size_t kHotTags = 65536;
  static constexpr std::size_t kHotLinks = 262144;
  std::mutex hot_mutex_;
  std::unordered_map<std::string, std::shared_ptr<const Cached>> hot_manifests_;
  std::size_t hot_bytes_ = 0;
  std::unordered_map<std::string, TagRecord> hot_tags_;
  // digest -> the "host/repository" names that link it (hot_link_count_ in all).
  std::unordered_map<std::string, std::vector<std::string>> hot_links_;
  std::size_t hot_link_count_ = 0;
};

}  // namespace pullthrough::proxy
