// The tokens the appliance knows the holder of: issued through its token endpoint, or offline.
#include "proxy/access/token_book.hpp"

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "tests/core/fake_clock.hpp"

namespace pullthrough::proxy {
namespace {

using std::chrono::seconds;

class TokenBookTest : public ::testing::Test {
 protected:
  ClientIdentity identity(std::string_view password) const {
    return hasher_.of_password("user", password);
  }

  core::testing::FakeClock clock_;
  IdentityHasher hasher_{std::array<std::uint8_t, 32>{7}};
};

TEST_F(TokenBookTest, IssuedTokenNamesItsHolderUntilItExpires) {
  TokenBook book(clock_);
  const ClientIdentity alice = identity("alice");
  book.issued("tok.en-1", alice, seconds(300));

  auto holder = book.holder_of("Bearer tok.en-1");
  ASSERT_TRUE(holder);
  EXPECT_EQ(holder->identity, alice);
  EXPECT_FALSE(holder->offline);
  EXPECT_EQ(holder->expires, clock_.now() + seconds(300));

  clock_.advance(seconds(299));
  EXPECT_TRUE(book.holder_of("Bearer tok.en-1"));
  clock_.advance(seconds(1));
  EXPECT_FALSE(book.holder_of("Bearer tok.en-1"));
}

TEST_F(TokenBookTest, SchemeIsCaseInsensitiveAndBlanksAroundAreIgnored) {
  TokenBook book(clock_);
  book.issued("abc", identity("a"), seconds(60));
  for (const char* value : {"Bearer abc", "bearer abc", "BEARER abc", "  Bearer abc  ",
                            "\tbEaReR\t abc\t", "Bearer   abc"}) {
    EXPECT_TRUE(book.holder_of(value)) << '"' << value << '"';
  }
}

TEST_F(TokenBookTest, OtherSchemesUnknownTokensAndMalformedValuesHaveNoHolder) {
  TokenBook book(clock_);
  book.issued("abc", identity("a"), seconds(60));
  for (const char* value :
       {"", "abc", "Bearer", "Bearer ", "Basic abc", "Bearerabc", "Bearer abcd", "Bearer ab",
        "Bearer ABC", "Bearer abc def", "Token abc", "Bearer abc,"}) {
    EXPECT_FALSE(book.holder_of(value)) << '"' << value << '"';
  }
}

TEST_F(TokenBookTest, TokensAreKeptByHashNotAsText) {
  // The book answers for the exact token only: a prefix or an extension of it is another token.
  TokenBook book(clock_);
  book.issued("secret-token", identity("a"), seconds(60));
  EXPECT_TRUE(book.holder_of("Bearer secret-token"));
  EXPECT_FALSE(book.holder_of("Bearer secret-toke"));
  EXPECT_FALSE(book.holder_of("Bearer secret-tokenx"));
}

TEST_F(TokenBookTest, ReissuedTokenTakesTheNewHolderAndLifetime) {
  TokenBook book(clock_);
  book.issued("t", identity("a"), seconds(60));
  book.issued("t", identity("b"), seconds(600));
  EXPECT_EQ(book.size(), 1u);
  clock_.advance(seconds(120));
  auto holder = book.holder_of("Bearer t");
  ASSERT_TRUE(holder);
  EXPECT_EQ(holder->identity, identity("b"));
}

TEST_F(TokenBookTest, ZeroLifetimeAndEmptyTokenAreNotKept) {
  TokenBook book(clock_);
  book.issued("t", identity("a"), seconds(0));
  book.issued("", identity("a"), seconds(60));
  EXPECT_EQ(book.size(), 0u);
  EXPECT_FALSE(book.holder_of("Bearer t"));
}

TEST_F(TokenBookTest, AnonymousHolderIsRemembered) {
  // A realm hands tokens to clients without credentials too; such a token stands for nobody.
  TokenBook book(clock_);
  book.issued("anon", ClientIdentity{}, seconds(60));
  auto holder = book.holder_of("Bearer anon");
  ASSERT_TRUE(holder);
  EXPECT_TRUE(holder->identity.anonymous);
}

TEST_F(TokenBookTest, OfflineTokensAreUnguessableAndKnown) {
  TokenBook book(clock_);
  const ClientIdentity alice = identity("alice");
  std::set<std::string> tokens;
  for (int i = 0; i < 50; ++i) {
    const std::string token = book.issue_offline(alice, seconds(300));
    constexpr std::string_view kPrefix = "pullthrough-offline.";
    ASSERT_TRUE(token.starts_with(kPrefix)) << token;
    const std::string random = token.substr(kPrefix.size());
    EXPECT_EQ(random.size(), 43u) << token;
    for (char c : random) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << token;
    }
    tokens.insert(token);
    auto holder = book.holder_of("Bearer " + token);
    ASSERT_TRUE(holder);
    EXPECT_TRUE(holder->offline);
    EXPECT_EQ(holder->identity, alice);
  }
  EXPECT_EQ(tokens.size(), 50u);
}

TEST_F(TokenBookTest, OfflineTokensExpire) {
  TokenBook book(clock_);
  const std::string token = book.issue_offline(identity("a"), seconds(30));
  clock_.advance(seconds(30));
  EXPECT_FALSE(book.holder_of("Bearer " + token));
  // Expired, it is still recognisably offline: it must not go upstream.
  EXPECT_TRUE(TokenBook::is_offline("Bearer " + token));
}

TEST_F(TokenBookTest, IsOfflineRecognisesThePrefixOnly) {
  EXPECT_TRUE(TokenBook::is_offline("Bearer pullthrough-offline.unknown"));
  EXPECT_TRUE(TokenBook::is_offline("  bearer pullthrough-offline.x "));
  EXPECT_TRUE(TokenBook::is_offline("Bearer pullthrough-offline."));
  EXPECT_FALSE(TokenBook::is_offline("Bearer pullthrough-offline"));
  EXPECT_FALSE(TokenBook::is_offline("Bearer eyJhbGciOi.pullthrough-offline.x"));
  EXPECT_FALSE(TokenBook::is_offline("Basic pullthrough-offline.x"));
  EXPECT_FALSE(TokenBook::is_offline("pullthrough-offline.x"));
  EXPECT_FALSE(TokenBook::is_offline(""));
}

TEST_F(TokenBookTest, FullBookDropsExpiredTokensFirst) {
  TokenBook book(clock_, 4);
  book.issued("short", identity("a"), seconds(10));
  book.issued("long-1", identity("a"), seconds(1000));
  book.issued("short-2", identity("a"), seconds(15));
  book.issued("long-2", identity("a"), seconds(1000));
  clock_.advance(seconds(20));
  book.issued("new", identity("a"), seconds(500));
  // Both expired tokens went, not just the one room was needed for.
  EXPECT_EQ(book.size(), 3u);
  EXPECT_TRUE(book.holder_of("Bearer long-1"));
  EXPECT_TRUE(book.holder_of("Bearer long-2"));
  EXPECT_TRUE(book.holder_of("Bearer new"));
}

TEST_F(TokenBookTest, FullBookWithoutExpiredTokensDropsTheOneExpiringSoonest) {
  TokenBook book(clock_, 3);
  book.issued("first-long", identity("a"), seconds(1000));
  book.issued("soonest", identity("a"), seconds(100));
  book.issued("middle", identity("a"), seconds(500));
  book.issued("new", identity("a"), seconds(300));
  EXPECT_EQ(book.size(), 3u);
  EXPECT_FALSE(book.holder_of("Bearer soonest"));
  EXPECT_TRUE(book.holder_of("Bearer first-long"));
  EXPECT_TRUE(book.holder_of("Bearer middle"));
  EXPECT_TRUE(book.holder_of("Bearer new"));
}

TEST_F(TokenBookTest, BoundHoldsUnderAFloodOfTokens) {
  TokenBook book(clock_, 16);
  for (int i = 0; i < 5000; ++i) {
    book.issued("t" + std::to_string(i), identity("a"), seconds(60 + i % 7));
    if (i % 3 == 0) book.issue_offline(identity("b"), seconds(30));
    ASSERT_LE(book.size(), 16u);
    if (i % 100 == 0) clock_.advance(seconds(1));
  }
  EXPECT_EQ(book.size(), 16u);
}

}  // namespace
}  // namespace pullthrough::proxy
