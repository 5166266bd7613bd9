#include "core/units.hpp"

#include <gtest/gtest.h>

namespace pullthrough::core {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(DurationTest, ParsesEachUnit) {
  EXPECT_EQ(parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(parse_duration("10s"), seconds(10));
  EXPECT_EQ(parse_duration("5m"), minutes(5));
  EXPECT_EQ(parse_duration("2h"), hours(2));
  EXPECT_EQ(parse_duration("30d"), hours(24 * 30));
}

TEST(DurationTest, ParsesCompoundLargestFirst) {
  EXPECT_EQ(parse_duration("1h30m"), minutes(90));
  EXPECT_EQ(parse_duration("1m30s500ms"), milliseconds(90500));
}

TEST(DurationTest, BareZeroIsAccepted) { EXPECT_EQ(parse_duration("0"), milliseconds(0)); }

TEST(DurationTest, RejectsMalformed) {
  for (const char* text : {"", "10", "s", "10x", "-5s", "1.5s", "10 s", " 10s", "10s ", "30s1m",
                           "1m1m", "10S", "ms", "1d2d", "0x10s"}) {
    EXPECT_EQ(parse_duration(text), std::nullopt) << text;
  }
}

TEST(DurationTest, RejectsOverflow) {
  EXPECT_EQ(parse_duration("99999999999999999999s"), std::nullopt);
  EXPECT_EQ(parse_duration("999999999999999999d"), std::nullopt);
}

TEST(DurationTest, FormatsShortestExactSpelling) {
  EXPECT_EQ(format_duration(milliseconds(0)), "0s");
  EXPECT_EQ(format_duration(milliseconds(90000)), "1m30s");
  EXPECT_EQ(format_duration(milliseconds(1500)), "1s500ms");
  EXPECT_EQ(format_duration(hours(48)), "2d");
}

TEST(DurationTest, FormatThenParseRoundTrips) {
  for (auto ms : {1LL, 999LL, 1000LL, 61001LL, 86400000LL * 3 + 7}) {
    EXPECT_EQ(parse_duration(format_duration(milliseconds(ms))), milliseconds(ms)) << ms;
  }
}

TEST(SizeTest, ParsesBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_size("512MiB"), 512ULL << 20);
  EXPECT_EQ(parse_size("100GiB"), 100ULL << 30);
  EXPECT_EQ(parse_size("1KiB"), 1024U);
  EXPECT_EQ(parse_size("2TiB"), 2ULL << 40);
  EXPECT_EQ(parse_size("1KB"), 1000U);
  EXPECT_EQ(parse_size("3MB"), 3000000U);
  EXPECT_EQ(parse_size("1GB"), 1000000000U);
  EXPECT_EQ(parse_size("1TB"), 1000000000000ULL);
  EXPECT_EQ(parse_size("7B"), 7U);
}

TEST(SizeTest, BareNumberIsBytes) {
  EXPECT_EQ(parse_size("0"), 0U);
  EXPECT_EQ(parse_size("4096"), 4096U);
}

TEST(SizeTest, RejectsMalformed) {
  for (const char* text : {"", "MiB", "1.5GiB", "-1", "1 GiB", "1gib", "1Gi", "1G", "1iB"}) {
    EXPECT_EQ(parse_size(text), std::nullopt) << text;
  }
}

TEST(SizeTest, RejectsOverflow) {
  EXPECT_EQ(parse_size("18446744073709551616"), std::nullopt);
  EXPECT_EQ(parse_size("17179869184GiB"), std::nullopt);
  EXPECT_EQ(parse_size("18446744073709551615"), 18446744073709551615ULL);
}

TEST(SizeTest, FormatsLargestExactBinaryUnit) {
  EXPECT_EQ(format_size(0), "0B");
  EXPECT_EQ(format_size(1ULL << 30), "1GiB");
  EXPECT_EQ(format_size(1536ULL << 20), "1536MiB");
  EXPECT_EQ(format_size(1000), "1000B");
}

TEST(Rfc3339Test, ParsesWhatItFormats) {
  auto when = SystemTime(std::chrono::seconds(1'800'000'000)) + std::chrono::milliseconds(42);
  EXPECT_EQ(parse_rfc3339(format_rfc3339(when)), when);
  EXPECT_EQ(parse_rfc3339("2027-01-15T08:00:00Z"), SystemTime(std::chrono::seconds(1'800'000'000)));
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00.000Z"), SystemTime{});
  EXPECT_EQ(parse_rfc3339("2024-02-29T23:59:59Z"),
            SystemTime(std::chrono::sys_days(std::chrono::year(2024) / 2 / 29).time_since_epoch() +
                       std::chrono::seconds(86399)));
}

TEST(Rfc3339Test, RejectsAnythingElse) {
  for (const char* text : {"", "2027-01-15", "2027-01-15T08:00:00", "2027-01-15T08:00:00+00:00",
                           "2027-01-15t08:00:00z", "2027-13-15T08:00:00Z", "2023-02-29T08:00:00Z",
                           "2027-01-15T24:00:00Z", "2027-01-15T08:60:00Z", "2027-01-15T08:00:00.1Z",
                           "2027-01-15T08:00:00.0000Z", "2027-01-15T08:00:00Zx",
                           "+027-01-15T08:00:00Z", "2027-01-15 08:00:00Z"}) {
    EXPECT_EQ(parse_rfc3339(text), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace pullthrough::core
