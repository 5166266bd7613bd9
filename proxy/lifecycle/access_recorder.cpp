#include "proxy/lifecycle/access_recorder.hpp"

#include <utility>

#include <vector>

#include <boost/asio/post.hpp>

#include "core/logging.hpp"

namespace pullthrough::proxy {

namespace {

// What a use is of: the kind and its names, in one string ('\n' is in no name's grammar).
std::string key_of(ContentUse::Kind kind, const std::string& registry,
                   const std::string& repository, const std::string& name) {
  std::string key;
  key.reserve(2 + registry.size() + repository.size() + name.size() + 2);
  key += static_cast<char>('0' + static_cast<int>(kind));
  if (kind != ContentUse::Kind::blob) {
    key += registry;
    key += '\n';
    key += repository;
    key += '\n';
  }
  key += name;
  return key;
}

ContentUse use_of(const std::string& key, UnixSeconds when) {
  ContentUse use;
  use.kind = static_cast<ContentUse::Kind>(key.front() - '0');
  use.when = when;
  if (use.kind == ContentUse::Kind::blob) {
    use.name = key.substr(1);
    return use;
  }
  auto first = key.find('\n', 1);
  auto second = key.find('\n', first + 1);
  use.registry = key.substr(1, first - 1);
  use.repository = key.substr(first + 1, second - first - 1);
  use.name = key.substr(second + 1);
  return use;
}

}  // namespace

struct AccessRecorder::State {
  explicit State(MetadataIndex& i) : index(i), log(core::logger("proxy")) {}

  MetadataIndex& index;
  std::shared_ptr<spdlog::logger> log;
  mutable std::mutex mutex;                                 // guards what follows
  std::unordered_map<std::string, UnixSeconds> waiting;     // to be written
  std::unordered_map<std::string, UnixSeconds> last_noted;  // for the granularity
  bool write_queued = false;  // a write() is posted to the disk pool, or running there
  // Held for the whole of a write, so the destructor's last write never overlaps another.
  std::mutex writing;
};

AccessRecorder::AccessRecorder(MetadataIndex& index, asio::any_io_executor disk,
                               const core::WallClock& clock)
    : state_(std::make_shared<State>(index)), disk_(std::move(disk)), clock_(clock) {}

AccessRecorder::~AccessRecorder() { flush(); }

void AccessRecorder::blob(const std::string& digest) {
  static const std::string none;
  note(ContentUse::Kind::blob, none, none, digest);
}

void AccessRecorder::tag(const std::string& registry, const std::string& repository,
                         const std::string& tag) {
  note(ContentUse::Kind::tag, registry, repository, tag);
}

void AccessRecorder::manifest(const std::string& registry, const std::string& repository,
                              const std::string& digest) {
  note(ContentUse::Kind::manifest, registry, repository, digest);
}

void AccessRecorder::note(ContentUse::Kind kind, const std::string& registry,
                          const std::string& repository, const std::string& name) {
  const UnixSeconds now = unix_seconds(clock_);
  std::string key = key_of(kind, registry, repository, name);
  bool post = false;
  {
    std::lock_guard lock(state_->mutex);
    auto [it, inserted] = state_->last_noted.try_emplace(key, now);
    if (!inserted) {
      // A clock stepped back counts as a new use, so no hit is lost to it.
      if (now >= it->second && now - it->second < kGranularity.count()) return;
      it->second = now;
    }
    if (state_->last_noted.size() > kMaxRemembered) state_->last_noted.clear();
    auto& when = state_->waiting[std::move(key)];
    if (now > when) when = now;
    if (!state_->write_queued) {
      state_->write_queued = true;
      post = true;
    }
  }
  // Outside the lock: a pool may run the handler at once, on this thread.
  if (post) asio::post(disk_, [state = state_] { write(*state); });
}

void AccessRecorder::write(State& state) {
  std::lock_guard writing(state.writing);
  for (;;) {
    std::vector<ContentUse> batch;
    {
      std::lock_guard lock(state.mutex);
      if (state.waiting.empty()) {
        state.write_queued = false;
        return;
      }
      batch.reserve(state.waiting.size());
      for (const auto& [key, when] : state.waiting) batch.push_back(use_of(key, when));
      state.waiting.clear();
    }
    try {
      state.index.record_uses(batch);
    } catch (const std::exception& e) {
      // Last use is advice for retention: losing a minute of it on a failing disk is better
      // than holding memory for it without bound. The store's own health check reports the disk.
      state.log->error("recording the last use of {} objects: {}", batch.size(), e.what());
    }
  }
}

void AccessRecorder::flush() {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->waiting.empty()) return;
    state_->write_queued = true;  // a write posted earlier finds nothing and ends
  }
  write(*state_);
}

std::size_t AccessRecorder::pending() const {
  std::lock_guard lock(state_->mutex);
  return state_->waiting.size();
}

}  // namespace pullthrough::proxy
