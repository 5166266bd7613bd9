#include "proxy/blob_fetches.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <chrono>
#include <span>
#include <system_error>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/logging.hpp"
#include "core/spawn.hpp"

namespace pullthrough::proxy {
namespace {

// Large enough that a fast upstream costs few wake-ups of the followers, small enough that they
// start sending soon after the first bytes arrive.
constexpr std::size_t kChunkBytes = std::size_t{256} * 1024;
// A follower re-checks the fetch this often even without a wake-up: a safety net, not the
// mechanism (a lost wake-up would cost at most this much).
constexpr auto kSafetyWake = std::chrono::seconds(1);

}  // namespace

FetchProgress BlobFetch::progress() const {
  std::lock_guard lock(mutex_);
  return progress_locked();
}

FetchProgress BlobFetch::progress_locked() const {
  FetchProgress p;
  p.state = state_;
  p.size = size_;
  p.written = written_;
  if (state_ == FetchState::stored) {
    p.sendable = written_;
  } else if (state_ == FetchState::streaming && size_ && *size_ > 0) {
    p.sendable = std::min(written_, *size_ - 1);
  }
  if (state_ == FetchState::failed) p.failure = failure_;
  return p;
}

asio::awaitable<FetchProgress> BlobFetch::wait_past(const FetchProgress& seen) {
  auto executor = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(executor);
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      FetchProgress now = progress_locked();
      if (now.state != seen.state || now.sendable > seen.sendable) co_return now;
      timer->expires_after(kSafetyWake);
      waiters_.push_back(timer);
    }
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

std::unique_ptr<BlobReader> BlobFetch::reader() {
  std::lock_guard lock(mutex_);
  return writer_ ? writer_->reader() : nullptr;
}

void BlobFetch::start_streaming(std::optional<std::uint64_t> size,
                                std::unique_ptr<BlobWriter> writer) {
  std::lock_guard lock(mutex_);
  size_ = size;
  writer_ = std::move(writer);
  state_ = FetchState::streaming;
  notify_locked();
}

void BlobFetch::advance(std::uint64_t written) {
  std::lock_guard lock(mutex_);
  written_ = written;
  notify_locked();
}

void BlobFetch::finish_stored() {
  std::lock_guard lock(mutex_);
  if (!size_) size_ = written_;
  state_ = FetchState::stored;
  notify_locked();
}

void BlobFetch::fail(FetchFailure failure) {
  std::lock_guard lock(mutex_);
  failure_ = std::move(failure);
  state_ = FetchState::failed;
  notify_locked();
}

void BlobFetch::notify_locked() {
  for (auto& weak : waiters_) {
    auto timer = weak.lock();
    if (!timer) continue;
    // On the waiter's own executor: the timer is not thread-safe, and the waiter registered
    // itself and began its wait without leaving that executor, so the cancel cannot overtake it.
    asio::post(timer->get_executor(), [weak] {
      if (auto t = weak.lock()) t->cancel();
    });
  }
  waiters_.clear();
}

asio::awaitable<StreamStatus> stream_range(BlobReader& reader, std::uint64_t from, std::uint64_t to,
                                           std::span<std::uint8_t> buffer, const StreamSink& sink,
                                           BlobFetch* fetch) {
  std::uint64_t offset = from;
  FetchProgress progress;
  if (fetch != nullptr) progress = fetch->progress();
  while (offset < to) {
    std::uint64_t available = to;
    if (fetch != nullptr) {
      while (progress.sendable <= offset && progress.state != FetchState::failed &&
             progress.state != FetchState::stored) {
        progress = co_await fetch->wait_past(progress);
      }
      if (progress.sendable <= offset) {
        // Failed, or stored shorter than the range asked for: nothing more will come.
        co_return progress.state == FetchState::failed ? StreamStatus::fetch_failed
                                                       : StreamStatus::read_failed;
      }
      available = std::min(to, progress.sendable);
    }
    auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(available - offset, buffer.size()));
    std::size_t got = 0;
    try {
      got = reader.read(offset, buffer.first(want));
    } catch (const std::system_error&) {
      co_return StreamStatus::read_failed;
    }
    if (got == 0) co_return StreamStatus::read_failed;
    offset += got;
    // g++ 12 wants no temporaries in a co_await's arguments.
    const bool more = offset < available;
    const std::span<const std::uint8_t> bytes(buffer.data(), got);
    if (!co_await sink(bytes, more)) co_return StreamStatus::sink_failed;
  }
  co_return StreamStatus::complete;
}

asio::awaitable<StreamStatus> stream_stored(BlobStream& stream, std::uint64_t length,
                                            std::span<std::uint8_t> buffer,
                                            const StreamSink& sink) {
  std::uint64_t sent = 0;
  while (sent < length) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(length - sent, buffer.size()));
    const std::span<std::uint8_t> room = buffer.first(want);
    BodyRead read = co_await stream.read_some(room);
    if (read.error || read.bytes == 0) co_return StreamStatus::read_failed;
    sent += read.bytes;
    const bool more = sent < length;
    const std::span<const std::uint8_t> bytes(buffer.data(), read.bytes);
    if (!co_await sink(bytes, more)) co_return StreamStatus::sink_failed;
  }
  co_return StreamStatus::complete;
}

BlobFetches::BlobFetches(asio::io_context& io, asio::any_io_executor disk, BlobStore& store,
                         MetadataIndex& index, ContentGuard& guard, const core::WallClock& clock,
                         BlobFetchCounters& counters)
    : io_(io),
      disk_(std::move(disk)),
      store_(store),
      index_(index),
      guard_(guard),
      clock_(clock),
      counters_(counters),
      log_(core::logger("proxy")),
      table_(std::make_shared<Table>()) {}

BlobFetches::~BlobFetches() = default;

BlobFetches::Joined BlobFetches::join(const std::string& digest, const std::string& registry_host,
                                      const std::string& repository, RegistryUpstream& upstream,
                                      const UpstreamCredentials& credentials) {
  std::shared_ptr<BlobFetch> fetch;
  ContentGuard::Use use = guard_.write(digest);
  {
    std::lock_guard lock(table_->mutex);
    auto found = table_->fetches.find(digest);
    if (found != table_->fetches.end()) {
      counters_.coalesced_followers.add();
      return {found->second, true, std::move(use)};
    }
    fetch = std::make_shared<BlobFetch>(digest);
    if (!table_->gate.enter()) {
      FetchFailure failure;
      failure.kind = FetchFailure::Kind::stopped;
      failure.message = "the appliance is stopping";
      fetch->fail(std::move(failure));
      return {fetch, false, {}};
    }
    table_->fetches.emplace(digest, fetch);
  }
  counters_.fetches_started.add();
  core::spawn_logged(
      asio::make_strand(io_),
      run(fetch, registry_host, repository, upstream, credentials, guard_.write(digest)), log_,
      "blob fetch failed");
  return {fetch, false, std::move(use)};
}

asio::awaitable<void> BlobFetches::run(std::shared_ptr<BlobFetch> fetch, std::string registry_host,
                                       std::string repository, RegistryUpstream& upstream,
                                       UpstreamCredentials credentials, ContentGuard::Use use) {
  // Whatever happens below, the fetch leaves the table and the gate, and its followers learn
  // how it ended.
  struct Finish {
    std::shared_ptr<Table> table;
    std::shared_ptr<BlobFetch> fetch;
    ~Finish() { table->finished(fetch); }
  } finish{table_, fetch};

  const std::string& digest = fetch->digest();
  auto fail = [&](FetchFailure::Kind kind, std::string message, unsigned status = 0,
                  UpstreamFailure upstream_failure = UpstreamFailure::protocol) {
    FetchFailure failure;
    failure.kind = kind;
    failure.message = std::move(message);
    failure.status = status;
    failure.upstream = upstream_failure;
    counters_.fetches_failed.add();
    log_->warn("fetching {} from {}/{} failed: {}", digest, registry_host, repository,
               failure.message);
    fetch->fail(std::move(failure));
  };

  UpstreamRequest request;
  request.method = http::verb::get;
  request.target = "/v2/" + repository + "/blobs/" + digest;
  request.repository = repository;
  request.credentials = std::move(credentials);
  UpstreamResult result = co_await upstream.send(std::move(request));
  if (!result.response) {
    fail(FetchFailure::Kind::upstream_failed,
         std::string(to_string(result.failure)) + ": " + result.error, 0, result.failure);
    co_return;
  }
  UpstreamResponse& response = *result.response;
  unsigned status = response.header.result_int();
  if (status != 200 || !response.body) {
    fail(FetchFailure::Kind::upstream_status,
         "upstream answered " + std::to_string(status) + " from " + response.url, status);
    co_return;
  }

  auto size = response.body->content_length();
  std::unique_ptr<BlobWriter> writer;
  try {
    writer = store_.create(digest, size);
  } catch (const std::system_error& e) {
    counters_.storage_errors.add();
    fail(FetchFailure::Kind::storage, std::string("cannot store: ") + e.what());
    co_return;
  }
  BlobWriter& out = *writer;
  fetch->start_streaming(size, std::move(writer));
  auto body_started = std::chrono::steady_clock::now();

  std::vector<std::uint8_t> buffer(kChunkBytes);
  for (;;) {
    BodyRead read = co_await response.body->read_some(buffer);
    if (read.error) {
      fail(FetchFailure::Kind::upstream_failed,
           "upstream body broke off after " + std::to_string(out.written()) +
               " bytes: " + read.error.message(),
           0,
           read.error == boost::beast::error::timeout ? UpstreamFailure::timeout
                                                      : UpstreamFailure::protocol);
      co_return;
    }
    if (read.bytes == 0) break;
    counters_.bytes_from_upstream.add(read.bytes);
    try {
      out.write(std::span<const std::uint8_t>(buffer.data(), read.bytes));
    } catch (const std::system_error& e) {
      counters_.storage_errors.add();
      fail(FetchFailure::Kind::storage, std::string("cannot store: ") + e.what());
      co_return;
    }
    fetch->advance(out.written());
  }

  // fsync of a large file can take a while, and a removal of the same digest may have to end
  // first: not on a network thread. The index rows follow on the same thread, while `use` still
  // keeps a collection away.
  auto body_done = std::chrono::steady_clock::now();
  std::string index_error;
  // With a store that must still publish (upload) a committed blob, the index says it is stored
  // only once it is.
  const bool publish = !store_.commit_publishes();
  auto record = [&] {
    try {
      index_.put_blob(digest, out.written(), unix_seconds(clock_));
      index_.link(registry_host, repository, digest);
    } catch (const std::exception& e) {
      index_error = e.what();
    }
  };
  CommitResult commit = co_await asio::co_spawn(
      disk_,
      [&]() -> asio::awaitable<CommitResult> {
        guard_.wait_for_removal(digest);
        CommitResult committed = out.commit();
        if (committed.status == CommitStatus::stored && !publish) record();
        co_return committed;
      },
      asio::use_awaitable);
  switch (commit.status) {
    case CommitStatus::stored:
      break;
    case CommitStatus::digest_mismatch: {
      counters_.digest_mismatches.add();
      fail(FetchFailure::Kind::digest_mismatch, "upstream sent bytes that hash to " +
                                                    commit.actual_digest +
                                                    ": discarded, nothing stored");
      co_return;
    }
    case CommitStatus::size_mismatch: {
      counters_.size_mismatches.add();
      fail(FetchFailure::Kind::size_mismatch, "upstream sent " + std::to_string(out.written()) +
                                                  " bytes, not the announced length: discarded");
      co_return;
    }
    case CommitStatus::io_error: {
      counters_.storage_errors.add();
      fail(FetchFailure::Kind::storage, "cannot store: " + commit.error);
      co_return;
    }
  }
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  auto committed = std::chrono::steady_clock::now();
  if (publish) {
    // The bytes are verified, so every client gets its last byte now. The upload follows with
    // the fetch still in the table (requests meanwhile join it and read the spool) and the
    // digest still guarded from collections.
    fetch->finish_stored();
    std::string failed = co_await store_.publish(digest, out.written());
    if (!failed.empty()) {
      counters_.publish_failures.add();
      log_->error("{} was verified but could not be stored: {}", digest, failed);
      co_return;
    }
    co_await asio::co_spawn(
        disk_, [&]() -> asio::awaitable<void> { co_return record(); }, asio::use_awaitable);
  }
  if (!index_error.empty()) {
    // The blob is stored and verified; only its bookkeeping is missing, which the next hit
    // records again. Serving it is still right.
    log_->error("metadata for {}: {}", digest, index_error);
  }
  use = {};
  if (stored_) stored_(out.written());
  counters_.fetches_stored.add();
  auto now = std::chrono::steady_clock::now();
  log_->info("stored {} ({} bytes) from {}/{}: body {} ms, verify and commit {} ms{}", digest,
             out.written(), registry_host, repository, ms(body_done - body_started),
             ms(committed - body_done),
             publish ? ", upload " + std::to_string(ms(now - committed)) + " ms" : std::string());
  if (!publish) fetch->finish_stored();
}

void BlobFetches::Table::finished(const std::shared_ptr<BlobFetch>& fetch) {
  if (fetch->progress().state != FetchState::stored &&
      fetch->progress().state != FetchState::failed) {
    // Torn down without an outcome (the io_context was stopped): followers must not wait on.
    FetchFailure failure;
    failure.kind = FetchFailure::Kind::stopped;
    failure.message = "the appliance stopped";
    fetch->fail(std::move(failure));
  }
  {
    std::lock_guard lock(mutex);
    auto found = fetches.find(fetch->digest());
    if (found != fetches.end() && found->second == fetch) fetches.erase(found);
  }
  gate.leave();
}

void BlobFetches::stop(std::function<void()> drained) { table_->gate.close(std::move(drained)); }

std::size_t BlobFetches::in_flight() const {
  std::lock_guard lock(table_->mutex);
  return table_->fetches.size();
}

}  // namespace pullthrough::proxy
