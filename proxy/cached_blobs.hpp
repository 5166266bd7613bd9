// What the blob handler asks of the cache, in its own terms: a stored copy a repository may be
// served, a fetch to join for one that is not stored, and nothing about how either is kept. Behind
// it are the content-addressed store, the metadata index that links blobs to repositories, the
// recorder of their last use for retention, and the blob fetches.
#pragma once

#include "core/asio.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "config/config.hpp"
#include "proxy/blob_fetches.hpp"
#include "proxy/blob_store.hpp"
#include "proxy/lifecycle/access_recorder.hpp"
#include "proxy/lifecycle/content_guard.hpp"
#include "proxy/metadata_index.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

class CachedBlobs {
 public:
  // Everything given must outlive this.
  CachedBlobs(BlobStore& store, MetadataIndex& index, BlobFetches& fetches,
              AccessRecorder& recorder, ContentGuard& guard);

  struct Copy {
    std::uint64_t size = 0;
    // Held while the copy is sent: a collection does not remove the blob meanwhile.
    ContentGuard::Use use;
  };

  // A stored copy of `digest` that `repository` of `registry` may be served, recorded as an
  // access for retention; or nothing, and the blob must be fetched (also while a collection
  // removes it). A blob stored for another
  // repository is served here only once upstream confirms that this repository has it too, so a
  // cached layer never leaks past upstream's access control; the confirmation is then linked.
  // `credentials` are those the confirmation is asked with.
  asio::awaitable<std::optional<Copy>> find(const config::RegistryConfig& registry,
                                            const std::string& repository,
                                            const std::string& digest, RegistryUpstream& upstream,
                                            const UpstreamCredentials& credentials = {});

  // Bytes [from, to) of a copy find() gave; null when they cannot be read. A copy the store has
  // lost (an object deleted from the bucket behind the cache's back) is forgotten by the index,
  // so that the caller, and every request after it, fetches it again.
  asio::awaitable<std::unique_ptr<BlobStream>> read(const std::string& digest, std::uint64_t from,
                                                    std::uint64_t to);

  // The fetch of `digest` in progress, or a new one (see BlobFetches::join).
  BlobFetches::Joined fetch(const config::RegistryConfig& registry, const std::string& repository,
                            const std::string& digest, RegistryUpstream& upstream,
                            const UpstreamCredentials& credentials = {});

 private:
  BlobStore& store_;
  MetadataIndex& index_;
  BlobFetches& fetches_;
  AccessRecorder& recorder_;
  ContentGuard& guard_;
  std::shared_ptr<spdlog::logger> log_;
};

// Upstream's answer to HEAD of blob `digest` in `repository`.
asio::awaitable<UpstreamResult> head_upstream_blob(RegistryUpstream& upstream,
                                                   const std::string& repository,
                                                   const std::string& digest,
                                                   const UpstreamCredentials& credentials = {});

}  // namespace pullthrough::proxy
