#include "proxy/lifecycle/access_recorder.hpp"

#include <utility>

#include <vector>

#include <boost/asio/post.hpp>

#include "core/logging.hpp"

namespace pullthrough::proxy {

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
  const UnixSeconds now = unix_seconds(clock_);
  bool post = false;
  {
    std::lock_guard lock(state_->mutex);
    auto [it, inserted] = state_->last_noted.try_emplace(digest, now);
    if (!inserted) {
      // A clock stepped back counts as a new use, so no hit is lost to it.
      if (now >= it->second && now - it->second < kGranularity.count()) return;
      it->second = now;
    }
    if (state_->last_noted.size() > kMaxRemembered) state_->last_noted.clear();
    auto& when = state_->waiting[digest];
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
    std::vector<std::pair<std::string, UnixSeconds>> batch;
    {
      std::lock_guard lock(state.mutex);
      if (state.waiting.empty()) {
        state.write_queued = false;
        return;
      }
      batch.assign(std::make_move_iterator(state.waiting.begin()),
                   std::make_move_iterator(state.waiting.end()));
      state.waiting.clear();
    }
    try {
      state.index.touch_blobs(batch);
    } catch (const std::exception& e) {
      // Last use is advice for retention: losing a minute of it on a failing disk is better
      // than holding memory for it without bound. The store's own health check reports the disk.
      state.log->error("recording the last use of {} blobs: {}", batch.size(), e.what());
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
