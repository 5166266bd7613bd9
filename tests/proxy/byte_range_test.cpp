#include "proxy/byte_range.hpp"

#include <gtest/gtest.h>

namespace pullthrough::proxy {
namespace {

constexpr std::uint64_t kSize = 1234;

void expect_partial(std::string_view header, std::uint64_t size, std::uint64_t first,
                    std::uint64_t last) {
  const RangeDecision decision = decide_range(header, size);
  EXPECT_EQ(decision.kind, RangeKind::partial) << header;
  EXPECT_EQ(decision.range.first, first) << header;
  EXPECT_EQ(decision.range.last, last) << header;
}

void expect_kind(std::string_view header, std::uint64_t size, RangeKind kind) {
  EXPECT_EQ(decide_range(header, size).kind, kind) << '"' << header << "\" size " << size;
}

TEST(ByteRangeTest, AbsentHeaderIsWhole) {
  EXPECT_EQ(decide_range(std::nullopt, kSize).kind, RangeKind::whole);
  EXPECT_EQ(decide_range(std::nullopt, 0).kind, RangeKind::whole);
}

TEST(ByteRangeTest, ClosedRangeIsPartial) {
  expect_partial("bytes=0-99", kSize, 0, 99);
  expect_partial("bytes=100-100", kSize, 100, 100);
  expect_partial("bytes=1233-1233", kSize, 1233, 1233);
  EXPECT_EQ(decide_range("bytes=0-99", kSize).range.length(), 100u);
}

TEST(ByteRangeTest, LastBeyondSizeIsClamped) {
  expect_partial("bytes=1000-5000", kSize, 1000, 1233);
  expect_partial("bytes=0-9999999999999999999", kSize, 0, 1233);
}

TEST(ByteRangeTest, OpenRangeRunsToTheEnd) {
  expect_partial("bytes=0-", kSize, 0, 1233);
  expect_partial("bytes=1200-", kSize, 1200, 1233);
  expect_partial("bytes=1233-", kSize, 1233, 1233);
}

TEST(ByteRangeTest, FirstAtOrBeyondSizeIsUnsatisfiable) {
  expect_kind("bytes=1234-", kSize, RangeKind::unsatisfiable);
  expect_kind("bytes=1234-2000", kSize, RangeKind::unsatisfiable);
  expect_kind("bytes=5000-6000", kSize, RangeKind::unsatisfiable);
  expect_kind("bytes=9999999999999999999-", kSize, RangeKind::unsatisfiable);
}

TEST(ByteRangeTest, SuffixRangeTakesTheLastBytes) {
  expect_partial("bytes=-100", kSize, 1134, 1233);
  expect_partial("bytes=-1", kSize, 1233, 1233);
}

TEST(ByteRangeTest, SuffixLongerThanSizeTakesEverything) {
  expect_partial("bytes=-1234", kSize, 0, 1233);
  expect_partial("bytes=-5000", kSize, 0, 1233);
  expect_partial("bytes=-9999999999999999999", kSize, 0, 1233);
}

TEST(ByteRangeTest, ZeroSuffixIsUnsatisfiable) {
  expect_kind("bytes=-0", kSize, RangeKind::unsatisfiable);
  expect_kind("bytes=-000", kSize, RangeKind::unsatisfiable);
}

TEST(ByteRangeTest, EmptyRepresentationIsUnsatisfiable) {
  for (const char* header : {"bytes=0-", "bytes=0-0", "bytes=0-99", "bytes=-1", "bytes=-100"}) {
    expect_kind(header, 0, RangeKind::unsatisfiable);
  }
  expect_kind("items=0-1", 0, RangeKind::whole);
  expect_kind("bytes=5-2", 0, RangeKind::whole);
}

TEST(ByteRangeTest, RangeCoveringEverythingIsStillPartial) {
  expect_partial("bytes=0-1233", kSize, 0, 1233);
  expect_partial("bytes=0-", 1, 0, 0);
  expect_partial("bytes=-1", 1, 0, 0);
}

TEST(ByteRangeTest, FirstAfterLastIsIgnored) {
  expect_kind("bytes=5-2", kSize, RangeKind::whole);
  expect_kind("bytes=5000-2", kSize, RangeKind::whole);
}

TEST(ByteRangeTest, OverflowingNumberIsIgnored) {
  expect_kind("bytes=99999999999999999999-", kSize, RangeKind::whole);
  expect_kind("bytes=0-99999999999999999999", kSize, RangeKind::whole);
  expect_kind("bytes=-99999999999999999999", kSize, RangeKind::whole);
  expect_kind("bytes=18446744073709551616-", kSize, RangeKind::whole);
}

TEST(ByteRangeTest, LeadingZerosAreAllowed) {
  expect_partial("bytes=007-010", kSize, 7, 10);
  expect_partial("bytes=-0010", kSize, 1224, 1233);
  expect_partial("bytes=0000000000000000001-", kSize, 1, 1233);
}

TEST(ByteRangeTest, MultipleRangesAreIgnored) {
  expect_kind("bytes=0-1,5-6", kSize, RangeKind::whole);
  expect_kind("bytes=0-1, 5-6", kSize, RangeKind::whole);
  expect_kind("bytes=-1,0-", kSize, RangeKind::whole);
  expect_kind("bytes=0-1,", kSize, RangeKind::whole);
}

TEST(ByteRangeTest, OtherUnitIsIgnored) {
  expect_kind("items=0-1", kSize, RangeKind::whole);
  expect_kind("byte=0-1", kSize, RangeKind::whole);
  expect_kind("bytesx=0-1", kSize, RangeKind::whole);
  expect_kind("=0-1", kSize, RangeKind::whole);
}

TEST(ByteRangeTest, UnitIsCaseInsensitive) {
  expect_partial("Bytes=0-1", kSize, 0, 1);
  expect_partial("BYTES=-2", kSize, 1232, 1233);
}

TEST(ByteRangeTest, MalformedSpecIsIgnored) {
  for (const char* header :
       {"", "bytes", "bytes 0-1", "bytes=", "bytes=-", "bytes=abc", "bytes=1", "bytes=1-2-3",
        "bytes=--1", "bytes=+1-2", "bytes=1-+2", "bytes=-+1", "bytes=0x1-2", "bytes=1 -2",
        "bytes=1- 2", "bytes=1.5-2", "bytes==0-1", "bytes =0-1", "garbage"}) {
    expect_kind(header, kSize, RangeKind::whole);
  }
}

TEST(ByteRangeTest, SurroundingWhitespaceIsTrimmed) {
  expect_partial(" bytes=0-1 ", kSize, 0, 1);
  expect_partial("\tbytes=\t0-1\t", kSize, 0, 1);
  expect_partial("bytes= -5 ", kSize, 1229, 1233);
}

TEST(ByteRangeTest, ContentRangeForPartial) {
  EXPECT_EQ(content_range(ByteRange{.first = 0, .last = 99}, kSize), "bytes 0-99/1234");
  EXPECT_EQ(content_range(decide_range("bytes=-1", kSize).range, kSize), "bytes 1233-1233/1234");
  EXPECT_EQ(
      content_range(ByteRange{.first = 0, .last = 18446744073709551614u}, 18446744073709551615u),
      "bytes 0-18446744073709551614/18446744073709551615");
}

TEST(ByteRangeTest, ContentRangeForUnsatisfiable) {
  EXPECT_EQ(unsatisfied_content_range(kSize), "bytes */1234");
  EXPECT_EQ(unsatisfied_content_range(0), "bytes */0");
}

}  // namespace
}  // namespace pullthrough::proxy
