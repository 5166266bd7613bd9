#include "proxy/s3_blob_store.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <list>
#include <random>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <pthread.h>

#include "core/logging.hpp"
#include "core/spawn.hpp"
#include "proxy/route.hpp"

namespace pullthrough::proxy {
namespace {

namespace fs = std::filesystem;

std::string read_key(const std::string& path, const char* setting) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string(setting) + ": cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string key = text.str();
  // Files written by `echo` end in a newline that is not part of the key.
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.empty()) throw std::runtime_error(std::string(setting) + ": " + path + " is empty");
  return key;
}

// A spool file as an upload's payload.
class FilePayload final : public s3::Payload {
 public:
  explicit FilePayload(BlobReader& reader) : reader_(reader) {}
  std::size_t read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    return reader_.read(offset, out);
  }

 private:
  BlobReader& reader_;
};

// A ranged GET's body, read on the store's thread a batch at a time: each batch costs the caller's
// thread two hand-overs (there and back), so a batch is several of the caller's chunks.
class BucketStream final : public BlobStream {
 public:
  static constexpr std::size_t kBatch = std::size_t{256} * 1024;

  BucketStream(asio::io_context& io, std::unique_ptr<s3::ObjectReader> reader)
      : io_(io), reader_(std::move(reader)) {}

  asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) override {
    if (next_ == filled_) {
      if (batch_.empty()) {
        batch_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(kBatch, reader_->size())));
      }
      if (batch_.empty()) co_return BodyRead{};
      asio::awaitable<BodyRead> fill = fill_batch();
      BodyRead filled = co_await asio::co_spawn(io_, std::move(fill), asio::use_awaitable);
      if (filled.bytes == 0) co_return filled;
    }
    const std::size_t n = std::min(out.size(), filled_ - next_);
    std::memcpy(out.data(), batch_.data() + next_, n);
    next_ += n;
    co_return BodyRead{n, {}};
  }

 private:
  // On the store's thread: reads until the batch is full, the range has ended or a read failed
  // (the bytes before a failure count; the reader keeps the error for the next call).
  asio::awaitable<BodyRead> fill_batch() {
    std::size_t filled = 0;
    error_code error;
    while (filled < batch_.size()) {
      BodyRead read = co_await reader_->read_some(std::span(batch_).subspan(filled));
      if (read.error) {
        error = read.error;
        break;
      }
      if (read.bytes == 0) break;
      filled += read.bytes;
    }
    next_ = 0;
    filled_ = filled;
    co_return BodyRead{filled, filled > 0 ? error_code{} : error};
  }

  asio::io_context& io_;
  std::unique_ptr<s3::ObjectReader> reader_;
  std::vector<std::uint8_t> batch_;
  std::size_t next_ = 0;
  std::size_t filled_ = 0;
};

std::string random_hex(std::size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    auto byte = static_cast<unsigned>(random() & 0xFF);
    out += kHex[byte >> 4];
    out += kHex[byte & 0xF];
  }
  return out;
}

}  // namespace

// The verified blobs kept in the spool after their upload, least recently used first out.
class S3BlobStore::HotTier {
 public:
  HotTier(std::uint64_t limit, LocalBlobStore& spool) : limit_(limit), spool_(spool) {}

  // Takes a blob whose upload succeeded; past the limit the least recently used ones leave the
  // spool (with a limit of 0, this one at once). Readers that have a file open keep reading it.
  void admit(const std::string& digest, std::uint64_t size) {
    std::vector<std::string> evicted;
    {
      std::lock_guard lock(mutex_);
      if (auto found = entries_.find(digest); found != entries_.end()) {
        order_.splice(order_.begin(), order_, found->second.at);
        return;
      }
      order_.push_front(digest);
      entries_.emplace(digest, Entry{size, order_.begin()});
      bytes_ += size;
      while (bytes_ > limit_ && !order_.empty()) {
        const std::string victim = order_.back();
        bytes_ -= entries_.at(victim).size;
        entries_.erase(victim);
        order_.pop_back();
        evicted.push_back(victim);
      }
    }
    for (const auto& victim : evicted) spool_.remove(victim);
  }

  // True when the blob is held; it becomes the most recently used.
  bool touch(const std::string& digest) {
    std::lock_guard lock(mutex_);
    auto found = entries_.find(digest);
    if (found == entries_.end()) return false;
    order_.splice(order_.begin(), order_, found->second.at);
    return true;
  }

  void forget(const std::string& digest) {
    std::lock_guard lock(mutex_);
    auto found = entries_.find(digest);
    if (found == entries_.end()) return;
    bytes_ -= found->second.size;
    order_.erase(found->second.at);
    entries_.erase(found);
  }

  std::uint64_t bytes() const {
    std::lock_guard lock(mutex_);
    return bytes_;
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

 private:
  struct Entry {
    std::uint64_t size;
    std::list<std::string>::iterator at;
  };
  const std::uint64_t limit_;
  LocalBlobStore& spool_;
  mutable std::mutex mutex_;
  std::list<std::string> order_;  // most recently used first
  std::unordered_map<std::string, Entry> entries_;
  std::uint64_t bytes_ = 0;
};

S3BlobStore::S3BlobStore(const config::S3Config& config, const std::string& spool,
                         core::HostResolver& resolver, KnownSize known_size,
                         std::chrono::milliseconds probe_timeout)
    : work_(asio::make_work_guard(io_)),
      known_size_(std::move(known_size)),
      probe_interval_(
          std::chrono::duration_cast<std::chrono::milliseconds>(config.probe_interval)) {
  s3::ClientSettings settings;
  settings.endpoint = Origin{config.endpoint.scheme, config.endpoint.host, config.endpoint.port};
  settings.region = config.region;
  settings.bucket = config.bucket;
  settings.prefix = config.prefix;
  settings.path_style = config.path_style;
  settings.ca_file = config.ca_file;
  settings.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.timeout);
  settings.max_retries = config.max_retries;
  settings.credentials.access_key = read_key(config.access_key_file, "storage.s3.access_key_file");
  settings.credentials.secret_key = read_key(config.secret_key_file, "storage.s3.secret_key_file");
  description_ = "bucket " + config.bucket + " at " + config.endpoint.to_string();
  s3::ClientSettings probe = settings;
  // A health check answers within its own timeout, and a failure is what it reports.
  probe.timeout = probe_timeout;
  probe.max_retries = 0;
  probe.max_idle_connections = 2;
  client_ = std::make_unique<s3::Client>(io_, std::move(settings), resolver, clock_, wall_clock_,
                                         metrics_);
  probe_client_ = std::make_unique<s3::Client>(io_, std::move(probe), resolver, clock_, wall_clock_,
                                               probe_metrics_);
  spool_ = std::make_unique<LocalBlobStore>(spool);
  hot_ = std::make_unique<HotTier>(config.hot_tier, *spool_);

  // What a previous run left in the spool: blobs the index records go back into the hot tier,
  // oldest first; the others were never uploaded, or were removed since, and go.
  struct Found {
    std::string digest;
    std::uint64_t size;
    fs::file_time_type used;
  };
  std::vector<Found> found;
  std::size_t dropped = 0;
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(spool + "/blobs", ec)) {
    if (!entry.is_regular_file(ec)) continue;
    const auto& path = entry.path();
    std::string digest =
        path.parent_path().parent_path().filename().string() + ":" + path.filename().string();
    if (check_digest(digest) != DigestStatus::ok || !known_size_(digest)) {
      fs::remove(path, ec);
      ++dropped;
      continue;
    }
    found.push_back(
        {digest, static_cast<std::uint64_t>(entry.file_size(ec)), entry.last_write_time(ec)});
  }
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.used < b.used; });
  for (const auto& blob : found) hot_->admit(blob.digest, blob.size);
  auto log = core::logger("storage");
  if (dropped > 0)
    log->info("removed {} files from the spool that the index does not know", dropped);

  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "s3");
    io_.run();
  });
}

S3BlobStore::~S3BlobStore() {
  client_->shutdown();
  probe_client_->shutdown();
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

template <typename T>
T S3BlobStore::wait_for(asio::awaitable<T> operation) {
  return core::run_blocking(asio::co_spawn(io_, std::move(operation), asio::use_awaitable));
}

std::string S3BlobStore::key_for(std::string_view digest) {
  auto colon = digest.find(':');
  std::string key = "blobs/";
  key.append(digest.substr(0, colon));
  key += '/';
  key.append(digest.substr(colon + 1));
  return key;
}

std::optional<std::uint64_t> S3BlobStore::size(std::string_view digest) {
  if (auto local = spool_->size(digest)) return local;
  return known_size_(digest);
}

asio::awaitable<std::unique_ptr<BlobStream>> S3BlobStore::read(std::string digest,
                                                               std::uint64_t from, std::uint64_t to,
                                                               std::string& error) {
  if (hot_->touch(digest) || spool_->size(digest)) {
    std::unique_ptr<BlobStream> local = co_await spool_->read(digest, from, to, error);
    if (local) co_return local;
    // Evicted since: the bucket has it.
    error.clear();
  }
  std::unique_ptr<s3::ObjectReader> reader;
  asio::awaitable<s3::Outcome> get = client_->get(key_for(digest), from, to, reader);
  s3::Outcome outcome = co_await asio::co_spawn(io_, std::move(get), asio::use_awaitable);
  if (outcome) {
    if (!outcome->not_found()) error = outcome->message;
    co_return nullptr;
  }
  co_return std::make_unique<BucketStream>(io_, std::move(reader));
}

asio::awaitable<std::optional<std::string>> S3BlobStore::read_all(std::string digest,
                                                                  std::uint64_t size) {
  if (spool_->size(digest)) {
    std::optional<std::string> local = co_await spool_->read_all(digest, size);
    if (local) co_return local;
  }
  std::string body;
  asio::awaitable<s3::Outcome> get = client_->get_all(key_for(digest), size, body);
  s3::Outcome outcome = co_await asio::co_spawn(io_, std::move(get), asio::use_awaitable);
  if (outcome) {
    core::logger("storage")->warn("{}", outcome->message);
    co_return std::nullopt;
  }
  if (body.size() != size) co_return std::nullopt;
  co_return body;
}

std::unique_ptr<BlobWriter> S3BlobStore::create(std::string_view digest,
                                                std::optional<std::uint64_t> expected_size) {
  return spool_->create(digest, expected_size);
}

asio::awaitable<std::string> S3BlobStore::publish(std::string digest, std::uint64_t size) {
  std::unique_ptr<BlobReader> reader;
  try {
    reader = spool_->open(digest);
  } catch (const std::exception& e) {
    co_return std::string("reading the spool: ") + e.what();
  }
  if (!reader) co_return "the verified blob " + digest + " is no longer in the spool";
  FilePayload payload(*reader);
  const std::string key = key_for(digest);
  // The bucket checks the payload's SHA-256, which a sha256 digest already is.
  std::string hash;
  if (digest.starts_with("sha256:")) hash = digest.substr(7);
  auto upload = [&]() -> asio::awaitable<s3::Outcome> {
    if (hash.empty()) hash = s3::payload_sha256(payload, 0, size);
    co_return co_await client_->upload(key, payload, size, hash);
  };
  s3::Outcome outcome;
  try {
    outcome = co_await asio::co_spawn(io_, upload, asio::use_awaitable);
  } catch (const std::exception& e) {
    outcome = s3::Failure{s3::Operation::put, 0, "payload", e.what()};
  }
  if (outcome) {
    // Never recorded as stored: the next request fetches it again.
    spool_->remove(digest);
    co_return outcome->message;
  }
  hot_->admit(digest, size);
  co_return std::string();
}

bool S3BlobStore::remove(std::string_view digest) {
  const std::string name(digest);
  hot_->forget(name);
  spool_->remove(digest);
  s3::Outcome outcome = wait_for(client_->remove(key_for(digest)));
  if (outcome) throw std::runtime_error(outcome->message);
  return true;
}

StoreHealth S3BlobStore::check_health(std::uint64_t min_free) {
  StoreHealth health = spool_->check_health(min_free);
  health.free_bytes.reset();
  health.total_bytes.reset();
  if (!health.ok()) {
    health.reason = "spool: " + health.reason;
    return health;
  }
  std::lock_guard lock(probe_mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (!probed_ || now - last_probe_ >= probe_interval_) {
    // A key of this process's own: appliances sharing the bucket probe side by side.
    static const std::string kKey = "health/" + random_hex(8);
    const std::string content = "pullthrough health probe " + random_hex(8);
    s3::MemoryPayload payload(content);
    std::string error;
    auto put = probe_client_->put(kKey, payload, content.size(), s3::sha256_hex(content));
    if (auto failed = wait_for(std::move(put))) {
      error = failed->message;
    } else {
      std::string back;
      auto get = probe_client_->get_all(kKey, content.size(), back);
      if (auto unreadable = wait_for(std::move(get))) {
        error = unreadable->message;
      } else if (back != content) {
        error = "GET " + probe_client_->describe(kKey) + " returned other bytes than were PUT";
      } else if (auto kept = wait_for(probe_client_->remove(kKey))) {
        error = kept->message;
      }
    }
    last_probe_ = now;
    last_probe_error_ = std::move(error);
    probed_ = true;
  }
  if (!last_probe_error_.empty()) {
    health.problem = StoreHealth::Problem::unwritable;
    health.reason = description_ + ": " + last_probe_error_;
  }
  return health;
}

std::uint64_t S3BlobStore::hot_bytes() const { return hot_->bytes(); }
std::size_t S3BlobStore::hot_blobs() const { return hot_->count(); }

}  // namespace pullthrough::proxy
