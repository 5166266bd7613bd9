// One upstream fetch per blob, however many clients ask for it at once.
//
// A fetch runs as a coroutine of its own, not inside any client's request: it streams the upstream
// body into a BlobWriter (which hashes as it writes), and every client, the first included, is a
// follower that reads the growing temp file as bytes arrive and sends them on. So a slow client
// does not slow the fetch, a client that disconnects does not abort it, and the bytes every client
// gets are the bytes that are being verified.
//
// Nothing unverified is ever passed off as complete: until the digest has been checked, followers
// may send all but the last byte of a body whose size upstream announced (and nothing of one it did
// not announce), so a client whose transfer must fail has not yet received a complete response.
#pragma once

#include "core/asio.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include "core/clock.hpp"
#include "core/counters.hpp"
#include "core/gate.hpp"
#include "proxy/blob_store.hpp"
#include "proxy/lifecycle/content_guard.hpp"
#include "proxy/metadata_index.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

#define PULLTHROUGH_BLOB_FETCH_COUNTERS(COUNTER)                                           \
  COUNTER(fetches_started, "blob fetches started upstream")                                \
  COUNTER(fetches_stored, "blob fetches verified and stored")                              \
  COUNTER(fetches_failed, "blob fetches that failed (upstream, storage or verification)")  \
  COUNTER(coalesced_followers, "blob requests that joined a fetch already in progress")    \
  COUNTER(digest_mismatches, "blobs whose bytes did not match their digest: never stored") \
  COUNTER(size_mismatches, "blobs whose length differed from what upstream announced")     \
  COUNTER(storage_errors, "blob fetches abandoned because the store could not write")      \
  COUNTER(publish_failures,                                                                \
          "verified blobs the store could not publish (upload): fetched again when asked") \
  COUNTER(bytes_from_upstream, "blob bytes received from upstream registries")

struct BlobFetchCounters {
  PULLTHROUGH_BLOB_FETCH_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_BLOB_FETCH_COUNTERS)
};

enum class FetchState : std::uint8_t {
  connecting,  // waiting for upstream's response header
  streaming,   // bytes arriving
  stored,      // verified and published: every byte may be sent
  failed,      // see FetchFailure: followers must fail their transfers
};

struct FetchFailure {
  enum class Kind : std::uint8_t {
    upstream_status,  // upstream answered, but not 200 (`status` holds what it said)
    upstream_failed,  // no answer, or the body broke off (`upstream` holds why)
    digest_mismatch,
    size_mismatch,
    storage,  // the store could not take the bytes (a full disk)
    stopped,  // the appliance is stopping
  };
  Kind kind = Kind::upstream_failed;
  unsigned status = 0;
  UpstreamFailure upstream = UpstreamFailure::protocol;
  std::string message;  // for logs and error bodies
};

struct FetchProgress {
  FetchState state = FetchState::connecting;
  // Once streaming: what upstream announced, if anything. Always set once stored.
  std::optional<std::uint64_t> size;
  std::uint64_t written = 0;  // bytes in the temp file so far
  // How many bytes a follower may send now: all of them once stored; before that all but the
  // last of an announced size, and none of a body without an announced size.
  std::uint64_t sendable = 0;
  FetchFailure failure;  // when failed
};

// One blob in flight. Shared by the fetch coroutine and its followers; thread-safe.
class BlobFetch {
 public:
  explicit BlobFetch(std::string digest) : digest_(std::move(digest)) {}
  BlobFetch(const BlobFetch&) = delete;
  BlobFetch& operator=(const BlobFetch&) = delete;

  const std::string& digest() const { return digest_; }
  FetchProgress progress() const;

  // Returns once the fetch has moved past `seen` (more bytes sendable, or another state). The
  // awaiting coroutine must run on a strand (or a single-threaded io_context): the wake-up is
  // posted to its executor, which must not run it before the wait has begun.
  boost::asio::awaitable<FetchProgress> wait_past(const FetchProgress& seen);

  // A reader over the bytes written so far; nullptr before streaming or after a failure that
  // came before it. Each follower takes its own.
  std::unique_ptr<BlobReader> reader();

 private:
  friend class BlobFetches;

  FetchProgress progress_locked() const;
  void start_streaming(std::optional<std::uint64_t> size, std::unique_ptr<BlobWriter> writer);
  void advance(std::uint64_t written);
  void finish_stored();
  void fail(FetchFailure failure);
  // Under mutex_: wakes every waiter.
  void notify_locked();

  const std::string digest_;
  mutable std::mutex mutex_;
  FetchState state_ = FetchState::connecting;
  std::optional<std::uint64_t> size_;
  std::uint64_t written_ = 0;
  FetchFailure failure_;
  // Kept after commit or failure: readers taken from it stay valid (see BlobWriter::reader).
  std::unique_ptr<BlobWriter> writer_;
  std::vector<std::weak_ptr<boost::asio::steady_timer>> waiters_;
};

enum class StreamStatus : std::uint8_t {
  complete,      // every byte went to the sink
  fetch_failed,  // the fetch failed first: the transfer must be cut off
  sink_failed,   // the sink gave up (the client went away)
  read_failed,   // the store could not give back bytes it had (an I/O error)
};

// Receives the next bytes of a transfer; false to stop (a write failed). `more` says that the next
// bytes follow at once, so the sink may hold these back to send them together; when it is false
// (the end of the range, or a wait for a fetch comes next) everything must go out now.
using StreamSink =
    std::function<boost::asio::awaitable<bool>(std::span<const std::uint8_t> bytes, bool more)>;

// Sends bytes [from, to) of `reader` to `sink`, `buffer.size()` at a time. With a `fetch`, the
// bytes are still arriving: each is sent once the fetch makes it sendable, and the transfer
// stops with fetch_failed if the fetch fails before `to`. Runs on a strand (see wait_past).
boost::asio::awaitable<StreamStatus> stream_range(BlobReader& reader, std::uint64_t from,
                                                  std::uint64_t to, std::span<std::uint8_t> buffer,
                                                  const StreamSink& sink,
                                                  BlobFetch* fetch = nullptr);

// Sends the first `length` bytes of `stream` (a stored blob's range) to `sink`, `buffer.size()`
// at most at a time.
boost::asio::awaitable<StreamStatus> stream_stored(BlobStream& stream, std::uint64_t length,
                                                   std::span<std::uint8_t> buffer,
                                                   const StreamSink& sink);

class BlobFetches {
 public:
  // `store`, `index`, `guard`, `clock` and `counters` must outlive every fetch; `io` runs the
  // fetches and `disk` the blocking work (commit with its fsync, the index rows). Each fetch
  // holds a write use of its digest in `guard` from join() until its rows are written.
  BlobFetches(boost::asio::io_context& io, boost::asio::any_io_executor disk, BlobStore& store,
              MetadataIndex& index, ContentGuard& guard, const core::WallClock& clock,
              BlobFetchCounters& counters);

  // Called with the size of each blob stored (for the size bound); set before any join().
  void on_stored(std::function<void(std::uint64_t)> stored) { stored_ = std::move(stored); }
  ~BlobFetches();
  BlobFetches(const BlobFetches&) = delete;
  BlobFetches& operator=(const BlobFetches&) = delete;

  struct Joined {
    std::shared_ptr<BlobFetch> fetch;
    bool coalesced = false;  // true when the fetch was already running
    // The follower's own use of the digest, held while it sends: once the fetch has ended, a
    // collection still leaves the blob alone until the follower is done.
    ContentGuard::Use use;
  };

  // The fetch of `digest` in progress, or a new one that GETs it for `repository` of the registry
  // `registry_host` from `upstream` (which must outlive the fetch), asked with `credentials`.
  // `digest` must have passed check_digest(). Safe from any thread.
  Joined join(const std::string& digest, const std::string& registry_host,
              const std::string& repository, RegistryUpstream& upstream,
              const UpstreamCredentials& credentials = {});

  // New fetches fail with `stopped`; calls `drained` once every fetch coroutine has ended.
  void stop(std::function<void()> drained);

  std::size_t in_flight() const;

 private:
  // The fetches in flight. Shared with each fetch coroutine, whose frame may outlive this object
  // when the io_context is torn down with the coroutine still suspended.
  struct Table {
    std::mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<BlobFetch>> fetches;
    core::Gate gate;
    void finished(const std::shared_ptr<BlobFetch>& fetch);
  };

  boost::asio::awaitable<void> run(std::shared_ptr<BlobFetch> fetch, std::string registry_host,
                                   std::string repository, RegistryUpstream& upstream,
                                   UpstreamCredentials credentials, ContentGuard::Use use);

  boost::asio::io_context& io_;
  boost::asio::any_io_executor disk_;
  BlobStore& store_;
  MetadataIndex& index_;
  ContentGuard& guard_;
  const core::WallClock& clock_;
  BlobFetchCounters& counters_;
  std::function<void(std::uint64_t)> stored_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<Table> table_;
};

}  // namespace pullthrough::proxy
