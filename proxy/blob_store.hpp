// Where the cache keeps its bytes: blobs and manifests alike, addressed by digest. An interface,
// because an S3 backend and several appliances sharing one bucket come later, so nothing above it
// may assume a local path. Everything written is verified against its digest before anyone can
// read it under that digest.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pullthrough::proxy {

// Reads one blob: a stored one, or the part written so far of one still arriving.
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

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // The size of a stored blob; empty when absent. `digest` must have passed check_digest().
  virtual std::optional<std::uint64_t> size(std::string_view digest) = 0;
  // nullptr when absent.
  virtual std::unique_ptr<BlobReader> open(std::string_view digest) = 0;
  // A writer for the blob `digest` names (sha256 or sha512). Throws std::system_error when no
  // space for it can be made at all (e.g. the store's directory is gone).
  virtual std::unique_ptr<BlobWriter> create(std::string_view digest,
                                             std::optional<std::uint64_t> expected_size) = 0;
  // True when something was removed.
  virtual bool remove(std::string_view digest) = 0;
  // Writes and removes a small probe object, and checks that at least `min_free` bytes stay
  // free. Blocks on I/O: call it from the disk pool, never from a network thread.
  virtual StoreHealth check_health(std::uint64_t min_free) = 0;
};

}  // namespace pullthrough::proxy
