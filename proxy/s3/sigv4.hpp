// AWS Signature Version 4 for S3 requests sent with an Authorization header ("Signature
// Calculations for the Authorization Header" in the Amazon S3 API reference; the algorithm is
// the one of the AWS SigV4 test suite, with S3's two differences: the path is encoded once and
// never normalized).
//
// The signer signs exactly the headers it is given, so what goes on the wire and what was signed
// cannot drift apart: the caller puts host, x-amz-date, x-amz-content-sha256 and, with temporary
// credentials, x-amz-security-token into the request it sends, hands the same list here, and
// adds the returned Authorization. The path and query it sends are canonical_path() and
// canonical_query(), which are the forms signed.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pullthrough::proxy::s3 {

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // empty: long-term credentials, no x-amz-security-token
};

struct Header {
  std::string name;  // any case
  std::string value;
};

struct QueryParameter {
  std::string name;  // raw, not percent-encoded
  std::string value;
};

// The `{}` let a designated initializer leave fields out without GCC 12's
// -Wmissing-field-initializers.
struct SignableRequest {
  std::string method{};  // "GET", "PUT", ...
  // Raw (not percent-encoded) absolute path, e.g. "/bucket/blobs/sha256/ab".
  std::string path{};
  // Raw; a parameter without a value ("?uploads") has the value "".
  std::vector<QueryParameter> query{};
  // Every header to sign, host included; a name may repeat.
  std::vector<Header> headers{};
  // Lower-case hex SHA-256 of the body, or kUnsignedPayload.
  std::string payload_hash{};
};

struct Signed {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-content-sha256;x-amz-date"
  std::string signature;       // lower-case hex
  // "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=...,
  // Signature=...": the value of the Authorization header.
  std::string authorization;
};

// SHA-256 of the empty body, and the payload hash that leaves the body out of the signature.
inline constexpr std::string_view kEmptyPayloadHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// The key for one day, region and service. Deriving it takes four HMACs and it changes only at
// midnight UTC, so a client derives it once a day and signs every request of that day with it.
// It remembers its date, region and service, which make the credential scope. The secret key
// is not kept; the derived key is wiped when the object goes. Immutable: one key may sign on
// several threads at once.
class SigningKey {
 public:
  // `date` is "YYYYMMDD" (UTC); throws std::invalid_argument otherwise.
  SigningKey(std::string_view secret_key, std::string_view date, std::string_view region,
             std::string_view service);
  SigningKey(const SigningKey&) = default;
  SigningKey& operator=(const SigningKey&) = default;
  SigningKey(SigningKey&&) = default;
  SigningKey& operator=(SigningKey&&) = default;
  ~SigningKey();

  const std::string& date() const { return date_; }
  const std::string& region() const { return region_; }
  const std::string& service() const { return service_; }
  // "20130524/us-east-1/s3/aws4_request".
  std::string scope() const;
  // Lower-case hex HMAC-SHA256 of `string_to_sign` under this key.
  std::string signature(std::string_view string_to_sign) const;

 private:
  std::array<std::uint8_t, 32> key_{};
  std::string date_;
  std::string region_;
  std::string service_;
};

// Signs with a key derived for this request from the date part of `amz_date`
// ("YYYYMMDDTHHMMSSZ"). Throws std::invalid_argument when the request cannot be valid: no host
// header, an x-amz-date header other than `amz_date`, or a session token in `credentials` that
// the request does not carry as x-amz-security-token.
Signed sign(const SignableRequest& request, const Credentials& credentials, std::string_view region,
            std::string_view service, std::string_view amz_date);
// Signs with a cached key. Throws std::invalid_argument for a bad `amz_date`, no host header or
// a differing x-amz-date as above, and when `amz_date` is not of the key's day (S3 refuses a
// scope whose date differs from the request's). The session token is the caller's to send.
Signed sign(const SignableRequest& request, std::string_view access_key, const SigningKey& key,
            std::string_view amz_date);

// S3's URI encoding: the RFC 3986 unreserved characters A-Z a-z 0-9 - . _ ~ are kept and every
// other byte becomes %XX (upper-case hex); '/' is kept when `encode_slash` is false.
std::string uri_encode(std::string_view text, bool encode_slash);

// The path and query as they go on the wire, which are also their canonical forms: the path
// encoded once with its slashes kept, with no removal of ".", ".." or empty segments (S3 keys
// may contain them); the query's names and values encoded, sorted by name then value, "name="
// for an empty value. An empty path is "/".
std::string canonical_path(std::string_view raw_path);
std::string canonical_query(const std::vector<QueryParameter>& query);

// "20130524T000000Z": ISO 8601 basic format in UTC, the x-amz-date value.
std::string amz_date(std::chrono::system_clock::time_point when);

// Lower-case hex SHA-256, for x-amz-content-sha256.
std::string sha256_hex(std::span<const std::uint8_t> bytes);
std::string sha256_hex(std::string_view text);

}  // namespace pullthrough::proxy::s3
