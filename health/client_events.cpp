#include "health/client_events.hpp"

#include <algorithm>
#include <charconv>
#include <random>

#include <fmt/format.h>

namespace pullthrough::health {
namespace {

constexpr std::size_t kMaxEpoch = 32;
constexpr std::uint64_t kMaxAgeMs = std::uint64_t{30} * 24 * 3600 * 1000;

bool is_epoch(std::string_view text) {
  return !text.empty() && text.size() <= kMaxEpoch &&
         std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); });
}

template <typename T>
std::optional<T> number(std::string_view text) {
  if (text.empty() || text.size() > 19 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Splits on single spaces; nothing when a field is empty or there are more than `max`.
std::optional<std::vector<std::string_view>> fields(std::string_view text, std::size_t max) {
  std::vector<std::string_view> out;
  while (true) {
    auto space = text.find(' ');
    auto field = text.substr(0, space);
    if (field.empty() || out.size() == max) return std::nullopt;
    out.push_back(field);
    if (space == std::string_view::npos) return out;
    text.remove_prefix(space + 1);
  }
}

std::string random_epoch() {
  std::random_device device;
  std::uint64_t value = (std::uint64_t{device()} << 32) ^ device();
  return fmt::format("{:016x}", value);
}

}  // namespace

std::string format_cursor(const EventCursor& cursor) {
  return fmt::format("{} {}", cursor.epoch, cursor.number);
}

std::optional<EventCursor> parse_cursor(std::string_view text) {
  auto parts = fields(text, 2);
  if (!parts || parts->size() != 2 || !is_epoch((*parts)[0])) return std::nullopt;
  auto n = number<std::uint64_t>((*parts)[1]);
  if (!n) return std::nullopt;
  return EventCursor{std::string((*parts)[0]), *n};
}

std::string format_event(const NumberedEvent& numbered) {
  const auto& e = numbered.event;
  if (e.kind == ClientEventKind::enrolled) {
    return fmt::format("{} enrolled {} {}", numbered.number, e.client.to_string(), e.age.count());
  }
  return fmt::format("{} untrusted {} {} {}", numbered.number, e.client.to_string(), e.age.count(),
                     to_string(e.alert));
}

std::optional<NumberedEvent> parse_event(std::string_view text) {
  auto parts = fields(text, 5);
  if (!parts || parts->size() < 4) return std::nullopt;
  const auto& f = *parts;
  auto n = number<std::uint64_t>(f[0]);
  auto client = core::parse_ip(f[2]);
  auto age = number<std::uint64_t>(f[3]);
  if (!n || *n == 0 || !client || !age || *age > kMaxAgeMs) return std::nullopt;
  NumberedEvent out{*n, ClientEvent{}};
  out.event.client = core::unmapped(*client);
  out.event.age = std::chrono::milliseconds(static_cast<std::int64_t>(*age));
  if (f[1] == "enrolled" && f.size() == 4) {
    out.event.kind = ClientEventKind::enrolled;
    return out;
  }
  if (f[1] == "untrusted" && f.size() == 5) {
    auto alert = parse_certificate_alert(f[4]);
    if (!alert) return std::nullopt;
    out.event.kind = ClientEventKind::untrusted;
    out.event.alert = *alert;
    return out;
  }
  return std::nullopt;
}

ClientEventLog::ClientEventLog(const core::Clock& clock, std::size_t capacity, std::string epoch)
    : clock_(clock),
      capacity_(std::max<std::size_t>(1, capacity)),
      epoch_(is_epoch(epoch) ? std::move(epoch) : random_epoch()) {}

void ClientEventLog::publish(ClientEventKind kind, const core::IpAddress& client,
                             CertificateAlert alert) {
  auto now = clock_.now();
  std::lock_guard lock(mutex_);
  if (events_.size() == capacity_) events_.pop_front();
  events_.push_back(Stored{++last_, kind, core::unmapped(client), alert, now});
}

ClientEventLog::Batch ClientEventLog::after(const std::optional<EventCursor>& seen,
                                            std::size_t max) const {
  auto now = clock_.now();
  std::lock_guard lock(mutex_);
  Batch batch;
  batch.cursor.epoch = epoch_;
  std::uint64_t from = seen && seen->epoch == epoch_ ? seen->number : 0;
  for (const auto& stored : events_) {
    if (stored.number <= from) continue;
    if (batch.events.size() == max) break;
    auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - stored.at);
    batch.events.push_back(
        NumberedEvent{stored.number, ClientEvent{stored.kind, stored.client, stored.alert, age}});
    batch.cursor.number = stored.number;
  }
  if (batch.events.empty()) batch.cursor.number = last_;
  return batch;
}

}  // namespace pullthrough::health
