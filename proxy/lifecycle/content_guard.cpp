#include "proxy/lifecycle/content_guard.hpp"

#include <utility>

namespace pullthrough::proxy {

ContentGuard::Use::Use(Use&& other) noexcept
    : guard_(std::exchange(other.guard_, nullptr)),
      digest_(std::move(other.digest_)),
      writer_(other.writer_),
      during_removal_(other.during_removal_) {}

ContentGuard::Use& ContentGuard::Use::operator=(Use&& other) noexcept {
  if (this != &other) {
    release();
    guard_ = std::exchange(other.guard_, nullptr);
    digest_ = std::move(other.digest_);
    writer_ = other.writer_;
    during_removal_ = other.during_removal_;
  }
  return *this;
}

ContentGuard::Use::~Use() { release(); }

void ContentGuard::Use::release() {
  if (guard_ != nullptr) std::exchange(guard_, nullptr)->release(digest_, writer_);
}

ContentGuard::Use ContentGuard::read(std::string_view digest) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = entries_.try_emplace(std::string(digest));
  if (it->second.removing) return {};
  ++it->second.readers;
  return Use(this, it->first, false, false);
}

ContentGuard::Use ContentGuard::write(std::string_view digest) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = entries_.try_emplace(std::string(digest));
  ++it->second.writers;
  return Use(this, it->first, true, it->second.removing);
}

void ContentGuard::release(const std::string& digest, bool writer) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(digest);
  if (it == entries_.end()) return;
  if (writer) {
    --it->second.writers;
    if (collecting_) written_since_.insert(digest);
  } else {
    --it->second.readers;
  }
  erase_if_idle(it);
}

void ContentGuard::erase_if_idle(std::unordered_map<std::string, Entry>::iterator it) {
  const Entry& entry = it->second;
  if (entry.readers == 0 && entry.writers == 0 && !entry.removing) entries_.erase(it);
}

void ContentGuard::wait_for_removal(std::string_view digest) {
  std::unique_lock lock(mutex_);
  removal_ended_.wait(lock, [&] {
    auto it = entries_.find(std::string(digest));
    return it == entries_.end() || !it->second.removing;
  });
}

void ContentGuard::begin_collection() {
  std::lock_guard lock(mutex_);
  collecting_ = true;
  written_since_.clear();
}

void ContentGuard::end_collection() {
  std::lock_guard lock(mutex_);
  collecting_ = false;
  written_since_.clear();
}

bool ContentGuard::begin_removal(std::string_view digest) {
  std::lock_guard lock(mutex_);
  std::string key(digest);
  if (written_since_.contains(key)) return false;
  auto [it, inserted] = entries_.try_emplace(std::move(key));
  Entry& entry = it->second;
  if (entry.readers > 0 || entry.writers > 0 || entry.removing) return false;
  entry.removing = true;
  return true;
}

void ContentGuard::end_removal(std::string_view digest) {
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(std::string(digest));
    if (it == entries_.end()) return;
    it->second.removing = false;
    erase_if_idle(it);
  }
  removal_ended_.notify_all();
}

std::size_t ContentGuard::busy() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace pullthrough::proxy
