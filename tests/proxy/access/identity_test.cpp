// Client identities: a keyed hash of the Authorization value, never the credential itself.
#include "proxy/access/identity.hpp"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace pullthrough::proxy {
namespace {

std::array<std::uint8_t, 32> counting_key() {
  std::array<std::uint8_t, 32> key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);
  return key;
}

std::string hex(const std::array<std::uint8_t, 32>& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (auto b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0x0F];
  }
  return out;
}

TEST(IdentityTest, EmptyOrBlankAuthorizationIsAnonymous) {
  const IdentityHasher hasher(counting_key());
  for (const char* value : {"", " ", " \t "}) {
    const ClientIdentity identity = hasher.of_authorization(value);
    EXPECT_TRUE(identity.anonymous) << '"' << value << '"';
    EXPECT_EQ(identity, ClientIdentity{});
    EXPECT_EQ(identity.log_text(), "anonymous");
  }
}

// Known answer, computed with another HMAC implementation (Python's hmac module): HMAC-SHA-256
// under the key over the normalised value, whose scheme is lower-cased.
TEST(IdentityTest, HashIsHmacSha256OfTheNormalisedValue) {
  const IdentityHasher hasher(counting_key());
  const ClientIdentity identity = hasher.of_authorization("Basic dXNlcjpwYXNzd29yZA==");
  EXPECT_FALSE(identity.anonymous);
  EXPECT_EQ(hex(identity.hash), "2a28cef0ad33e4695abd9992895417e4339fcfa266209e9c3583dfbf3c2c8e3b");
  EXPECT_EQ(hex(hasher.of_authorization("Bearer abc.def").hash),
            "df329ff9fddc87329a4a2c78822a5fdbe68de1ce424b7bf803a6d9b53d5d69a7");
}

TEST(IdentityTest, SchemeCaseAndSurroundingBlanksDoNotMatter) {
  const IdentityHasher hasher(counting_key());
  const ClientIdentity reference = hasher.of_authorization("Basic dXNlcjpwYXNzd29yZA==");
  for (const char* value :
       {"basic dXNlcjpwYXNzd29yZA==", "BASIC dXNlcjpwYXNzd29yZA==", "  Basic dXNlcjpwYXNzd29yZA== ",
        "\tBasic  dXNlcjpwYXNzd29yZA==\t", "Basic\tdXNlcjpwYXNzd29yZA=="}) {
    EXPECT_EQ(hasher.of_authorization(value), reference) << value;
  }
}

TEST(IdentityTest, TheCredentialItselfIsCaseSensitive) {
  const IdentityHasher hasher(counting_key());
  EXPECT_NE(hasher.of_authorization("Bearer abc"), hasher.of_authorization("Bearer ABC"));
  EXPECT_NE(hasher.of_authorization("Bearer abc"), hasher.of_authorization("Basic abc"));
}

TEST(IdentityTest, PasswordEqualsTheBasicAuthorizationItEncodesTo) {
  const IdentityHasher hasher(counting_key());
  // RFC 7617 2: the example user "Aladdin" with password "open sesame".
  EXPECT_EQ(hasher.of_password("Aladdin", "open sesame"),
            hasher.of_authorization("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
  EXPECT_EQ(hasher.of_password("user", "password"),
            hasher.of_authorization("Basic dXNlcjpwYXNzd29yZA=="));
  EXPECT_NE(hasher.of_password("user", "Password"),
            hasher.of_authorization("Basic dXNlcjpwYXNzd29yZA=="));
  // A password may hold a colon; only the first colon separates it from the user.
  EXPECT_EQ(hasher.of_password("a", "b:c"), hasher.of_authorization("Basic YTpiOmM="));
  EXPECT_FALSE(hasher.of_password("", "").anonymous);
}

TEST(IdentityTest, KeyChangesTheHash) {
  auto other_key = counting_key();
  other_key[0] ^= 1;
  const IdentityHasher one(counting_key());
  const IdentityHasher two(other_key);
  EXPECT_NE(one.of_authorization("Bearer abc"), two.of_authorization("Bearer abc"));
}

TEST(IdentityTest, RandomKeysDiffer) {
  const IdentityHasher one;
  const IdentityHasher two;
  EXPECT_NE(one.of_authorization("Bearer abc"), two.of_authorization("Bearer abc"));
  EXPECT_EQ(one.of_authorization("Bearer abc"), one.of_authorization("Bearer abc"));
}

TEST(IdentityTest, LogTextIsAHashPrefixNeverTheCredential) {
  const IdentityHasher hasher(counting_key());
  const ClientIdentity identity = hasher.of_authorization("Basic dXNlcjpwYXNzd29yZA==");
  const std::string text = identity.log_text();
  EXPECT_EQ(text, "2a28cef0ad33");
  EXPECT_EQ(text.find("dXNl"), std::string::npos);
  EXPECT_EQ(text.find("user"), std::string::npos);
}

TEST(IdentityTest, DistinctCredentialsGetDistinctLogTexts) {
  const IdentityHasher hasher(counting_key());
  std::set<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    texts.insert(hasher.of_password("user", "password" + std::to_string(i)).log_text());
  }
  EXPECT_EQ(texts.size(), 200u);
}

}  // namespace
}  // namespace pullthrough::proxy
