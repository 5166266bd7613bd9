#include "health/client_scope.hpp"

#include <algorithm>

#include "core/logging.hpp"
#include "core/units.hpp"

namespace pullthrough::health {
namespace {

// Generations (and scope ids) are unique across every scope of the process, so that what a thread
// remembers of one scope can never be mistaken for another's, even one at the same address.
std::uint64_t next_generation() {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

constexpr auto kSeenWindow = std::chrono::hours(1);

}  // namespace

ClientScope::ClientScope(const config::InterceptConfig& config, EnrolledClients enrolled,
                         const core::Clock& clock, const core::WallClock& wall_clock)
    : id_(next_generation()),
      config_(config),
      clock_(clock),
      wall_clock_(wall_clock),
      started_(clock.now()),
      log_(core::logger("dns")),
      enrolled_(std::move(enrolled)),
      bypasses_(config.max_bypassed) {
  std::lock_guard lock(mutex_);
  publish_locked();
}

void ClientScope::publish_locked() {
  auto next = std::make_shared<Snapshot>();
  if (config_.enrolled) {
    for (const auto& entry : enrolled_.list()) next->enrolled.insert(entry.client);
  }
  for (const auto& bypass : bypasses_.active(clock_.now())) {
    next->bypassed.emplace(bypass.client, bypass.until);
  }
  snapshot_ = std::move(next);
  generation_.store(next_generation(), std::memory_order_release);
}

std::shared_ptr<const ClientScope::Snapshot> ClientScope::current() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

ClientScope::Verdict ClientScope::verdict(const core::IpAddress& client) const {
  struct Seen {
    std::uint64_t generation = 0;
    std::shared_ptr<const Snapshot> snapshot;
  };
  thread_local Seen seen;
  auto generation = generation_.load(std::memory_order_acquire);
  if (seen.generation != generation) {
    seen.snapshot = current();
    seen.generation = generation;
  }
  const Snapshot& snapshot = *seen.snapshot;
  auto address = core::unmapped(client);
  bool in_scope = config_.all_clients || core::contains_any(config_.networks, address) ||
                  (config_.enrolled && snapshot.enrolled.count(address) != 0);
  if (!in_scope) return Verdict::outside;
  if (snapshot.bypassed.empty()) return Verdict::intercept;
  auto it = snapshot.bypassed.find(address);
  if (it == snapshot.bypassed.end() || it->second <= clock_.now()) return Verdict::intercept;
  return Verdict::bypassed;
}

void ClientScope::note_intercepted(const core::IpAddress& client) const {
  auto address = core::unmapped(client);
  auto now = clock_.now();
  // Most answers go to the client asked just before: skip the shard's lock then.
  struct Last {
    std::uint64_t owner = 0;
    core::IpAddress address;
    core::Clock::TimePoint at;
  };
  thread_local Last last;
  if (last.owner == id_ && last.address == address && now - last.at < std::chrono::seconds(1)) {
    return;
  }
  last = Last{id_, address, now};
  auto& shard = seen_[core::IpAddressHash{}(address) % kSeenShards];
  std::lock_guard lock(shard.mutex);
  auto it = shard.last.find(address);
  if (it != shard.last.end()) {
    it->second = now;
    return;
  }
  if (shard.last.size() >= kMaxSeenPerShard) {
    std::erase_if(shard.last, [&](const auto& entry) { return now - entry.second >= kSeenWindow; });
    if (shard.last.size() >= kMaxSeenPerShard) return;
  }
  shard.last.emplace(address, now);
}

void ClientScope::learn_untrusted(const core::IpAddress& client, CertificateAlert alert,
                                  std::chrono::milliseconds age, std::string_view seen_by) {
  if (config_.untrusted_bypass <= std::chrono::milliseconds::zero()) return;
  auto now = clock_.now();
  auto since = now - age;
  {
    std::lock_guard lock(mutex_);
    if (!bypasses_.learn(client, alert, since, config_.untrusted_bypass, now)) return;
    publish_locked();
  }
  bypass_events_[index_of(alert)].add();
  log_->warn(
      "client {} does not trust the appliance's CA (TLS alert {} at {}): it gets the real "
      "registries' addresses until {}, or until it enrolls",
      core::unmapped(client).to_string(), to_string(alert), seen_by,
      core::format_rfc3339(
          core::wall_time(since + config_.untrusted_bypass, now, wall_clock_.now())));
}

ClientScope::EnrollResult ClientScope::enroll(const core::IpAddress& client, std::string_view via) {
  EnrollResult result;
  auto address = core::unmapped(client);
  {
    std::lock_guard lock(mutex_);
    result.bypass_cleared = bypasses_.clear(address);
    bool had = enrolled_.contains(address);
    result.ok = enrolled_.add(address, wall_clock_.now(), via, result.error);
    result.added = result.ok && !had;
    if (result.bypass_cleared || result.added) publish_locked();
  }
  if (!result.ok) {
    counters_.enrollment_errors.add();
    log_->error("client {} could not be enrolled: {}", address.to_string(), result.error);
    if (result.bypass_cleared) log_->info("client {}: bypass cleared", address.to_string());
    return result;
  }
  if (result.added) {
    counters_.enrollments.add();
    log_->info("client {} enrolled ({}){}", address.to_string(), via,
               result.bypass_cleared ? ": its bypass is cleared" : "");
  } else if (result.bypass_cleared) {
    log_->info("client {} enrolled again ({}): its bypass is cleared", address.to_string(), via);
  }
  return result;
}

ClientScope::RemoveResult ClientScope::remove(const core::IpAddress& client) {
  RemoveResult result;
  auto address = core::unmapped(client);
  {
    std::lock_guard lock(mutex_);
    result.ok = enrolled_.remove(address, result.removed, result.error);
    if (result.removed) publish_locked();
  }
  if (!result.ok) {
    counters_.enrollment_errors.add();
    log_->error("client {} could not be removed from the enrolled set: {}", address.to_string(),
                result.error);
  } else if (result.removed) {
    counters_.unenrollments.add();
    log_->info("client {} removed from the enrolled set", address.to_string());
  }
  return result;
}

void ClientScope::ignore_epoch(std::string epoch) {
  std::lock_guard lock(mutex_);
  ignored_epoch_ = std::move(epoch);
}

void ClientScope::apply(std::string_view epoch, const std::vector<NumberedEvent>& events,
                        std::string_view seen_by) {
  {
    std::lock_guard lock(mutex_);
    if (epoch == ignored_epoch_) {
      counters_.events_ignored.add(events.size());
      return;
    }
  }
  auto now = clock_.now();
  for (const auto& numbered : events) {
    const auto& event = numbered.event;
    counters_.events_received.add();
    // An event from before this process started was applied by its predecessor, or undone since
    // (`clients rm`); replaying it could re-enroll a removed client.
    if (event.age > now - started_) {
      counters_.events_ignored.add();
      continue;
    }
    switch (event.kind) {
      case ClientEventKind::untrusted:
        learn_untrusted(event.client, event.alert, event.age, seen_by);
        break;
      case ClientEventKind::enrolled:
        enroll(event.client, "enroll");
        break;
    }
  }
}

ClientScope::Status ClientScope::status() const {
  Status status;
  auto now = clock_.now();
  auto wall_now = wall_clock_.now();
  {
    std::lock_guard lock(mutex_);
    status.bypassed = bypasses_.listed(now, wall_now);
    status.enrolled = enrolled_.list();
  }
  status.intercepted = intercepted_count();
  return status;
}

std::size_t ClientScope::bypassed_count() const {
  std::lock_guard lock(mutex_);
  return bypasses_.active(clock_.now()).size();
}

std::size_t ClientScope::enrolled_count() const {
  std::lock_guard lock(mutex_);
  return enrolled_.size();
}

std::size_t ClientScope::intercepted_count() const {
  auto now = clock_.now();
  std::size_t count = 0;
  for (const auto& shard : seen_) {
    std::lock_guard lock(shard.mutex);
    for (const auto& [address, at] : shard.last) {
      if (now - at < kSeenWindow) ++count;
    }
  }
  return count;
}

std::array<std::uint64_t, kCertificateAlerts.size()> ClientScope::bypass_events() const {
  std::array<std::uint64_t, kCertificateAlerts.size()> out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = bypass_events_[i].value();
  return out;
}

}  // namespace pullthrough::health
