// The BlobStore in an S3 bucket, with a spool on local disk.
//
//  - A fetch is written to the spool (a LocalBlobStore), hashed as it arrives, and followed from
//    there, exactly as with the filesystem backend. commit() verifies it into the spool; only
//    then does publish() upload it to <prefix>blobs/<algorithm>/<hex>: one PUT below 64 MiB,
//    multipart above (nothing shows under the key until the upload completes, and nothing is
//    copied afterwards). The metadata index records it once the upload succeeded.
//  - A hit is one ranged GET streamed to the client. Sizes come from the metadata index
//    (`known_size`), so a hit costs one request: no HEAD, no LIST.
//  - The hot tier: verified blobs stay in the spool after their upload up to `hot_tier` bytes,
//    least recently used out first, and are served from there without a request. With a hot
//    tier of 0 a blob leaves the spool once uploaded.
//  - The health check probes the bucket (PUT, GET, DELETE of a small key), so wrong credentials,
//    a missing bucket or an unreachable endpoint make the cache unhealthy and the DNS side fall
//    back.
//
// Requests to the bucket run on a thread of the store's own, so that a thread of the disk or
// background pool may wait for one (remove(), check_health()) without holding up the network
// threads, and a network thread awaits them without blocking.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/host_resolver.hpp"
#include "proxy/blob_store.hpp"
#include "proxy/local_blob_store.hpp"
#include "proxy/s3/client.hpp"

namespace pullthrough::proxy {

class S3BlobStore final : public BlobStore {
 public:
  // The size of a blob or manifest the metadata index records as stored; empty when it records
  // none. Called from any thread.
  using KnownSize = std::function<std::optional<std::uint64_t>(std::string_view digest)>;

  // Reads the key files, opens the spool (removing a crash's partial files, and stored files
  // the index does not know) and starts the store's thread. Throws std::runtime_error naming
  // the file or setting when a key file cannot be read or is empty, or the spool cannot be made.
  // `resolver` must outlive the store; `probe_timeout` bounds each request of a health probe.
  S3BlobStore(const config::S3Config& config, const std::string& spool,
              core::HostResolver& resolver, KnownSize known_size,
              std::chrono::milliseconds probe_timeout);
  ~S3BlobStore() override;
  S3BlobStore(const S3BlobStore&) = delete;
  S3BlobStore& operator=(const S3BlobStore&) = delete;

  std::optional<std::uint64_t> size(std::string_view digest) override;
  boost::asio::awaitable<std::unique_ptr<BlobStream>> read(std::string digest, std::uint64_t from,
                                                           std::uint64_t to,
                                                           std::string& error) override;
  boost::asio::awaitable<std::optional<std::string>> read_all(std::string digest,
                                                              std::uint64_t size) override;
  std::unique_ptr<BlobWriter> create(std::string_view digest,
                                     std::optional<std::uint64_t> expected_size) override;
  bool commit_publishes() const override { return false; }
  boost::asio::awaitable<std::string> publish(std::string digest, std::uint64_t size) override;
  bool remove(std::string_view digest) override;
  // The spool's file system (writable, and min_free of it free), then a probe of the bucket at
  // most every probe_interval (the last result is reused in between). Free space is left
  // unknown: a bucket has no notion of it, and evicting from it frees no local disk.
  StoreHealth check_health(std::uint64_t min_free) override;

  // The object key of a digest: <prefix>blobs/<algorithm>/<hex>, without the prefix.
  static std::string key_for(std::string_view digest);

  const s3::ClientMetrics& metrics() const { return metrics_; }
  // Bytes of verified blobs kept in the spool for hits (the hot tier), and how many.
  std::uint64_t hot_bytes() const;
  std::size_t hot_blobs() const;
  const std::string& describe() const { return description_; }

 private:
  class HotTier;
  // Runs `operation` on the store's thread and waits for it, from a thread that may block.
  template <typename T>
  T wait_for(boost::asio::awaitable<T> operation);

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  core::SteadyClock clock_;
  core::SystemWallClock wall_clock_;
  s3::ClientMetrics metrics_;
  s3::ClientMetrics probe_metrics_;  // kept apart: the probe is not the cache's traffic
  std::unique_ptr<s3::Client> client_;
  std::unique_ptr<s3::Client> probe_client_;
  std::unique_ptr<LocalBlobStore> spool_;
  std::unique_ptr<HotTier> hot_;
  KnownSize known_size_;
  std::chrono::milliseconds probe_interval_;
  std::string description_;  // "bucket B at ENDPOINT"
  std::mutex probe_mutex_;
  std::chrono::steady_clock::time_point last_probe_{};
  std::string last_probe_error_;
  bool probed_ = false;
  std::thread thread_;
};

}  // namespace pullthrough::proxy
