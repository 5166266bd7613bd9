#include "health/client_events.hpp"

#include <chrono>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/core/fake_clock.hpp"

namespace pullthrough::health {
namespace {

using namespace std::chrono_literals;

core::IpAddress ip(const char* text) { return *core::parse_ip(text); }

TEST(ClientEventsTest, EventsAndCursorsRoundTrip) {
  NumberedEvent untrusted{7, ClientEvent{ClientEventKind::untrusted, ip("10.0.0.5"),
                                         CertificateAlert::bad_certificate, 1500ms}};
  EXPECT_EQ(format_event(untrusted), "7 untrusted 10.0.0.5 1500 bad_certificate");
  EXPECT_EQ(parse_event(format_event(untrusted)), untrusted);
  NumberedEvent enrolled{
      8, ClientEvent{ClientEventKind::enrolled, ip("fd00::5"), CertificateAlert::unknown_ca, 0ms}};
  EXPECT_EQ(format_event(enrolled), "8 enrolled fd00::5 0");
  EXPECT_EQ(parse_event(format_event(enrolled)), enrolled);
  EXPECT_EQ(parse_cursor("0a1b 42"), (EventCursor{"0a1b", 42}));
  EXPECT_EQ(format_cursor(EventCursor{"0a1b", 42}), "0a1b 42");
}

TEST(ClientEventsTest, AnythingElseDoesNotParse) {
  for (const char* bad :
       {"", "7", "7 untrusted 10.0.0.5 1500", "7 untrusted 10.0.0.5 1500 nope",
        "7 untrusted 10.0.0.5 1500 bad_certificate extra", "7 enrolled 10.0.0.5 0 unknown_ca",
        "0 enrolled 10.0.0.5 0", "07 enrolled 10.0.0.5 0", "7 enrolled 10.0.0.5 -1",
        "7 enrolled 10.0.0.5 99999999999999", "7  enrolled 10.0.0.5 0", "7 enrolled 10.0.0.5 0 ",
        "7 joined 10.0.0.5 0", "7 enrolled host 0", "18446744073709551616 enrolled 10.0.0.5 0"}) {
    EXPECT_FALSE(parse_event(bad)) << bad;
  }
  for (const char* bad : {"", "abc", "abc 1 2", "ABC 1", "abc -1", "abc x", " abc 1",
                          "0123456789abcdef0123456789abcdefX 1"}) {
    EXPECT_FALSE(parse_cursor(bad)) << bad;
  }
}

TEST(ClientEventLogTest, ACheckGetsWhatItHasNotSeenOldestFirst) {
  core::testing::FakeClock clock;
  ClientEventLog log(clock, 16, "e1");
  log.publish(ClientEventKind::untrusted, ip("10.0.0.5"), CertificateAlert::unknown_ca);
  clock.advance(2s);
  log.publish(ClientEventKind::enrolled, ip("::ffff:10.0.0.6"));
  clock.advance(1s);
  auto first = log.after(std::nullopt);
  EXPECT_EQ(first.cursor, (EventCursor{"e1", 2}));
  ASSERT_EQ(first.events.size(), 2U);
  EXPECT_EQ(first.events[0].number, 1U);
  EXPECT_EQ(first.events[0].event.age, 3s);
  EXPECT_EQ(first.events[1].event.client, ip("10.0.0.6"));
  EXPECT_EQ(first.events[1].event.kind, ClientEventKind::enrolled);
  EXPECT_EQ(first.events[1].event.age, 1s);

  auto nothing_new = log.after(first.cursor);
  EXPECT_TRUE(nothing_new.events.empty());
  EXPECT_EQ(nothing_new.cursor, (EventCursor{"e1", 2}));

  log.publish(ClientEventKind::enrolled, ip("10.0.0.7"));
  auto next = log.after(first.cursor);
  ASSERT_EQ(next.events.size(), 1U);
  EXPECT_EQ(next.events[0].number, 3U);
  EXPECT_EQ(next.cursor.number, 3U);
}

TEST(ClientEventLogTest, AnotherEpochGetsEverythingHeldAndBatchesAreBounded) {
  core::testing::FakeClock clock;
  ClientEventLog log(clock, 4, "e2");
  for (int i = 1; i <= 6; ++i) {
    log.publish(ClientEventKind::enrolled, ip(("10.0.0." + std::to_string(i)).c_str()));
  }
  // The cache restarted since that cursor was given out: the log's epoch differs.
  auto batch = log.after(EventCursor{"e1", 5});
  ASSERT_EQ(batch.events.size(), 4U);  // capacity 4: events 3 to 6
  EXPECT_EQ(batch.events.front().number, 3U);
  EXPECT_EQ(batch.cursor, (EventCursor{"e2", 6}));

  auto two = log.after(std::nullopt, 2);
  ASSERT_EQ(two.events.size(), 2U);
  EXPECT_EQ(two.cursor.number, 4U);
  auto rest = log.after(two.cursor, 2);
  ASSERT_EQ(rest.events.size(), 2U);
  EXPECT_EQ(rest.events[0].number, 5U);
  EXPECT_EQ(rest.cursor.number, 6U);
}

TEST(ClientEventLogTest, EpochsAreRandomUnlessGiven) {
  core::testing::FakeClock clock;
  ClientEventLog a(clock);
  ClientEventLog b(clock);
  EXPECT_NE(a.epoch(), b.epoch());
  EXPECT_TRUE(parse_cursor(a.epoch() + " 0"));
  EXPECT_EQ(ClientEventLog(clock, 4, "given").epoch(), "given");
}

}  // namespace
}  // namespace pullthrough::health
