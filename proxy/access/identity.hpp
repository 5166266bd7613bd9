// A client as the upstream registry knows it: by the credentials it presents. Kept only as a
// keyed hash (SHA-256 over a per-process random key and the Authorization value), so neither the
// maps nor the logs hold a credential, and a hash in a log cannot be checked against guessed
// passwords offline.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pullthrough::proxy {

struct ClientIdentity {
  std::array<std::uint8_t, 32> hash{};
  bool anonymous = true;  // presented no credentials at all (`hash` is then all zero)

  // The first 12 hex digits of the hash, for logs; "anonymous" for the anonymous client.
  std::string log_text() const;
  bool operator==(const ClientIdentity&) const = default;
};

class IdentityHasher {
 public:
  // A new random key (RAND_bytes); throws std::runtime_error when none can be had.
  IdentityHasher();
  // A fixed key, for tests.
  explicit IdentityHasher(const std::array<std::uint8_t, 32>& key);

  // The identity of an Authorization field value; empty or blank: the anonymous client. The
  // value is hashed as sent, after trimming surrounding whitespace, lower-casing the scheme and
  // folding the blanks after it to one space, so "basic  X" and "Basic X" are one client.
  // HMAC-SHA-256 under the key; throws std::runtime_error only when OpenSSL cannot compute it
  // (out of memory), rather than hand out an identity that could be another client's.
  ClientIdentity of_authorization(std::string_view authorization) const;
  // The identity of a user name and password given another way (a token request's form body):
  // the same as of_authorization("Basic " + base64(user ":" password)).
  ClientIdentity of_password(std::string_view user, std::string_view password) const;

 private:
  std::array<std::uint8_t, 32> key_{};
};

}  // namespace pullthrough::proxy
