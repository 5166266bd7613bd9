#include "proxy/cached_blobs.hpp"

#include "core/logging.hpp"

namespace pullthrough::proxy {

CachedBlobs::CachedBlobs(BlobStore& store, MetadataIndex& index, BlobFetches& fetches,
                         AccessRecorder& recorder, ContentGuard& guard)
    : store_(store),
      index_(index),
      fetches_(fetches),
      recorder_(recorder),
      guard_(guard),
      log_(core::logger("proxy")) {}

asio::awaitable<std::optional<CachedBlobs::Copy>> CachedBlobs::find(
    const config::RegistryConfig& registry, const std::string& repository,
    const std::string& digest, RegistryUpstream& upstream, const UpstreamCredentials& credentials) {
  ContentGuard::Use use = guard_.read(digest);
  if (!use) co_return std::nullopt;
  auto size = store_.size(digest);
  if (!size) co_return std::nullopt;
  if (!index_.linked(registry.host, repository, digest)) {
    UpstreamResult confirmed =
        co_await head_upstream_blob(upstream, repository, digest, credentials);
    if (!confirmed.response || confirmed.response->header.result_int() != 200) {
      co_return std::nullopt;
    }
    try {
      index_.link(registry.host, repository, digest);
    } catch (const std::exception& e) {
      log_->error("linking {}: {}", digest, e.what());
    }
    size = store_.size(digest);  // retention may have removed it meanwhile
    if (!size) co_return std::nullopt;
  }
  recorder_.blob(digest);
  co_return Copy{*size, std::move(use)};
}

asio::awaitable<std::unique_ptr<BlobStream>> CachedBlobs::read(const std::string& digest,
                                                               std::uint64_t from,
                                                               std::uint64_t to) {
  std::string error;
  std::unique_ptr<BlobStream> stream = co_await store_.read(digest, from, to, error);
  if (stream) co_return stream;
  if (!error.empty()) {
    log_->error("reading stored blob {}: {}", digest, error);
    co_return nullptr;
  }
  log_->warn("stored blob {} is missing from the store: fetching it again", digest);
  try {
    index_.forget_blob(digest);
  } catch (const std::exception& e) {
    log_->error("forgetting {}: {}", digest, e.what());
  }
  co_return nullptr;
}

BlobFetches::Joined CachedBlobs::fetch(const config::RegistryConfig& registry,
                                       const std::string& repository, const std::string& digest,
                                       RegistryUpstream& upstream,
                                       const UpstreamCredentials& credentials) {
  return fetches_.join(digest, registry.host, repository, upstream, credentials);
}

asio::awaitable<UpstreamResult> head_upstream_blob(RegistryUpstream& upstream,
                                                   const std::string& repository,
                                                   const std::string& digest,
                                                   const UpstreamCredentials& credentials) {
  UpstreamRequest probe;
  probe.credentials = credentials;
  probe.method = http::verb::head;
  probe.target = "/v2/" + repository + "/blobs/" + digest;
  probe.repository = repository;
  co_return co_await upstream.send(std::move(probe));
}

}  // namespace pullthrough::proxy
