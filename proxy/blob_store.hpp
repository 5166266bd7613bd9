// Where the cache keeps its bytes: blobs and manifests alike, addressed by digest. Two
// implementations: the local file system (local_blob_store.hpp) and an S3 bucket with a local
// spool (s3_blob_store.hpp), so nothing above this may assume a local path. Everything written is
// verified against its digest before anyone can read it under that digest.
#pragma once

#include "core/asio.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

// A stored blob's bytes in order from where it was opened: a local file read in place, or the
// body of one ranged GET. Used by one coroutine at a time.
class BlobStream {
 public:
  virtual ~BlobStream() = default;
  // Up to out.size() bytes; 0 with no error at the end of the range. An error means the rest of
  // the range cannot be had.
  virtual boost::asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) = 0;
};

// Reads one blob on local disk: a stored one, or the part written so far of one still arriving.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  // Copies up to out.size() bytes from `offset` into `out` and returns how many; 0 past the end
  // of what exists. Throws std::system_error on an I/O error. Safe from one thread at a time.
  virtual std::size_t read(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
};

enum class CommitStatus {
  stored,           // verified and published under its digest
  size_mismatch,    // not the size announced (Content-Length or descriptor)
  digest_mismatch,  // the bytes hash to something else: nothing is kept
  io_error,         // could not be made durable (the reason is in CommitResult::error)
};

struct CommitResult {
  CommitStatus status = CommitStatus::io_error;
  std::string actual_digest;  // what the bytes hashed to, for the log
  std::string error;
};

// Receives one blob's bytes and publishes them only if they match the digest it was created for.
// Destroying a writer that was not committed throws its bytes away.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // Appends. Throws std::system_error on an I/O error (a full disk): the caller abandons the
  // writer, which then deletes what it had.
  virtual void write(std::span<const std::uint8_t> bytes) = 0;
  virtual std::uint64_t written() const = 0;
  // A reader over the bytes written so far, for clients that follow a fetch in progress. It stays
  // readable after commit or abandon; the caller knows from the fetch how far it may read.
  virtual std::unique_ptr<BlobReader> reader() = 0;
  // Verifies the size (when one was expected) and the digest, then publishes atomically: a
  // concurrent open() sees either nothing or the whole verified blob. At most once.
  virtual CommitResult commit() = 0;
};

// Whether the store can take new blobs, as the health check sees it.
struct StoreHealth {
  enum class Problem { none, unwritable, full };
  Problem problem = Problem::none;
  std::string reason;  // for logs and /healthz; empty when there is no problem
  // Unknown for a backend without the notion (an object store).
  std::optional<std::uint64_t> free_bytes;
  std::optional<std::uint64_t> total_bytes;
  bool ok() const { return problem == Problem::none; }
};

// Every `digest` given must have passed check_digest().
class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // The size of a stored blob; empty when absent. Cheap: a stat, or the metadata index.
  virtual std::optional<std::uint64_t> size(std::string_view digest) = 0;
  // Bytes [from, to) of a stored blob, or null: with `error` empty when the store does not have
  // it (the bucket lost it, say), else saying why it cannot be read. For S3 this sends the GET
  // and waits for its header, so a caller learns of a missing object before it answers anyone.
  virtual boost::asio::awaitable<std::unique_ptr<BlobStream>> read(std::string digest,
                                                                   std::uint64_t from,
                                                                   std::uint64_t to,
                                                                   std::string& error) = 0;
  // The whole of a small stored object (a manifest) of `size` bytes; empty when it cannot be
  // had.
  virtual boost::asio::awaitable<std::optional<std::string>> read_all(std::string digest,
                                                                      std::uint64_t size) = 0;
  // A writer for the blob `digest` names (sha256 or sha512), on local disk. Throws
  // std::system_error when no space for it can be made at all (e.g. the directory is gone).
  virtual std::unique_ptr<BlobWriter> create(std::string_view digest,
                                             std::optional<std::uint64_t> expected_size) = 0;
  // True when a committed writer's blob is already where the store keeps it; false when it must
  // still be publish()ed (uploaded) before the metadata index may say it is stored.
  virtual bool commit_publishes() const { return true; }
  // Makes a committed blob durable where the store keeps it; empty on success, else why not.
  // The caller keeps the blob guarded from collections (ContentGuard::write) meanwhile.
  virtual boost::asio::awaitable<std::string> publish(std::string digest, std::uint64_t size);
  // True when something was removed. Blocks on I/O (for S3, on the bucket): call it from the
  // disk or background pool, never from a network thread.
  virtual bool remove(std::string_view digest) = 0;
  // Writes and removes a small probe object, and checks that at least `min_free` bytes stay
  // free (where the store has a notion of free space). Blocks on I/O like remove().
  virtual StoreHealth check_health(std::uint64_t min_free) = 0;
};

// Reads all `size` bytes of `reader` from its start; empty when they cannot be had.
std::optional<std::string> read_whole(BlobReader& reader, std::uint64_t size);

}  // namespace pullthrough::proxy
