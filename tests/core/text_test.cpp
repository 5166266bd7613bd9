#include "core/text.hpp"

#include <string>

#include <gtest/gtest.h>

namespace pullthrough::core {
namespace {

TEST(TextTest, AsciiLowerFoldsOnlyAsciiLetters) {
  EXPECT_EQ(ascii_lower("Quay.IO"), "quay.io");
  EXPECT_EQ(ascii_lower("\xc3\x84-Z@["), "\xc3\x84-z@[");
}

TEST(TextTest, IequalsComparesWithoutCase) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_FALSE(iequals("Content-Length", "content-lengths"));
  EXPECT_FALSE(iequals("a", "\xc3"));
}

TEST(TextTest, PrintableKeepsPrintableAsciiAndSpaces) {
  EXPECT_EQ(printable("library/alpine: not found", 64), "library/alpine: not found");
}

TEST(TextTest, PrintableReplacesControlBytesNonAsciiQuotesAndBackslashes) {
  EXPECT_EQ(printable(std::string("a\0b\r\n\x1b[31m\x7f\xff\"\\", 14), 64), "a?b???[31m????");
}

TEST(TextTest, PrintableCutsAtTheLimitAndSaysSo) {
  EXPECT_EQ(printable("abcdef", 3), "abc...");
  EXPECT_EQ(printable("abc", 3), "abc");
  EXPECT_EQ(printable("", 3), "");
}

}  // namespace
}  // namespace pullthrough::core
