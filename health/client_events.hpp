// How a cache tells the DNS side about clients, through the health check it already answers
// (health/protocol.hpp): a client whose TLS handshake showed it does not trust the CA, and a
// client that enrolled. With `--role all` the proxy tells its own DNS side directly; this exchange
// is for every DNS side that checks the cache over the network (`--role dns`, or several
// appliances that list each other in dns.cache_hosts).
//
// The cache keeps its latest events in a bounded log, numbered from 1 within an epoch (a random
// name the log takes at start). The check's request carries the last event it saw,
// `Pullthrough-Client-Events: <epoch> <number>`; the answer carries the events after it, oldest
// first and at most kMaxEventsPerAnswer, one `Pullthrough-Client-Event` field each:
//   <number> untrusted <address> <age in ms> <alert>
//   <number> enrolled <address> <age in ms>
// and in its own `Pullthrough-Client-Events` field the last event it carried (or, with none, the
// last there is). A request from another epoch (the cache restarted) or none gets the events the
// log still holds. The age is how long before the answer the event happened, so that neither side
// needs the other's clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/net.hpp"
#include "health/certificate_alert.hpp"

namespace pullthrough::health {

inline constexpr std::string_view kClientEventsHeader = "Pullthrough-Client-Events";
inline constexpr std::string_view kClientEventHeader = "Pullthrough-Client-Event";
inline constexpr std::size_t kMaxEventsPerAnswer = 32;

enum class ClientEventKind : std::uint8_t { untrusted, enrolled };

struct ClientEvent {
  ClientEventKind kind = ClientEventKind::untrusted;
  core::IpAddress client;
  CertificateAlert alert = CertificateAlert::unknown_ca;  // untrusted only
  std::chrono::milliseconds age{0};                       // before the answer that carried it
  bool operator==(const ClientEvent&) const = default;
};

struct EventCursor {
  std::string epoch;  // 1 to 32 of [0-9a-z]
  std::uint64_t number = 0;
  bool operator==(const EventCursor&) const = default;
};

std::string format_cursor(const EventCursor& cursor);
std::optional<EventCursor> parse_cursor(std::string_view text);

struct NumberedEvent {
  std::uint64_t number = 0;
  ClientEvent event;
  bool operator==(const NumberedEvent&) const = default;
};

std::string format_event(const NumberedEvent& event);
// Strict: one space between fields, no more than the format has, ages up to 30 days.
std::optional<NumberedEvent> parse_event(std::string_view text);

// The cache's side. Safe from any thread.
class ClientEventLog {
 public:
  // `clock` must outlive the log. `epoch`: empty for a random one.
  explicit ClientEventLog(const core::Clock& clock, std::size_t capacity = 1024,
                          std::string epoch = {});

  void publish(ClientEventKind kind, const core::IpAddress& client,
               CertificateAlert alert = CertificateAlert::unknown_ca);

  struct Batch {
    EventCursor cursor;  // what the answer's own field says
    std::vector<NumberedEvent> events;
  };
  // The events after `seen` (see above), at most `max`.
  Batch after(const std::optional<EventCursor>& seen, std::size_t max = kMaxEventsPerAnswer) const;

  const std::string& epoch() const { return epoch_; }

 private:
  struct Stored {
    std::uint64_t number;
    ClientEventKind kind;
    core::IpAddress client;
    CertificateAlert alert;
    core::Clock::TimePoint at;
  };

  const core::Clock& clock_;
  std::size_t capacity_;
  std::string epoch_;
  mutable std::mutex mutex_;
  std::deque<Stored> events_;
  std::uint64_t last_ = 0;
};

}  // namespace pullthrough::health
