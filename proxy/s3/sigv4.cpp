#include "proxy/s3/sigv4.hpp"

#include <utility>

#include <algorithm>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/openssl.hpp"
#include "core/text.hpp"

namespace pullthrough::proxy::s3 {
namespace {

using Digest = std::array<std::uint8_t, 32>;

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr char kHex[] = "0123456789abcdef";

std::string to_hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t byte : bytes) {
    out += kHex[byte >> 4];
    out += kHex[byte & 0xF];
  }
  return out;
}

std::span<const std::uint8_t> as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// EVP_Q_mac fetches the HMAC implementation on every call; at one HMAC per request (four more
// once a day) that lookup is nothing next to the TLS round trip the request makes.
Digest hmac_sha256(std::span<const std::uint8_t> key, std::string_view data) {
  Digest out{};
  std::size_t length = 0;
  const auto bytes = as_bytes(data);
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), bytes.data(),
                bytes.size(), out.data(), out.size(), &length) == nullptr ||
      length != out.size()) {
    throw std::runtime_error("HMAC-SHA256 failed: " + core::take_openssl_errors());
  }
  return out;
}

bool is_digits(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "YYYYMMDDTHHMMSSZ", the only form SigV4 accepts for the request time.
bool is_amz_date(std::string_view text) {
  return text.size() == 16 && is_digits(text.substr(0, 8)) && text[8] == 'T' &&
         is_digits(text.substr(9, 6)) && text[15] == 'Z';
}

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// SigV4 "Trimall": the value without the white space around it, each run of spaces inside it
// one space. The test suite's folded header (get-header-value-multiline) reaches the signer
// already unfolded to spaces, as RFC 9112 section 5.2 has a recipient do.
std::string canonical_value(std::string_view value) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out += c;
  }
  return out;
}

struct CanonicalHeaders {
  std::string block;           // "name:value\n" for each name
  std::string signed_headers;  // "name;name"
};

// Names lower-cased and sorted; the values of a repeated name joined with "," in the order
// given (stable_sort keeps that order).
CanonicalHeaders canonical_headers(const std::vector<Header>& headers) {
  std::vector<std::pair<std::string, std::string>> lines;
  lines.reserve(headers.size());
  for (const Header& header : headers) {
    lines.emplace_back(core::ascii_lower(header.name), canonical_value(header.value));
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  CanonicalHeaders out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const bool same_name_as_before = i > 0 && lines[i].first == lines[i - 1].first;
    if (same_name_as_before) {
      out.block += ',';
    } else {
      if (i > 0) {
        out.block += '\n';
        out.signed_headers += ';';
      }
      out.block += lines[i].first;
      out.block += ':';
      out.signed_headers += lines[i].first;
    }
    out.block += lines[i].second;
  }
  if (!lines.empty()) out.block += '\n';
  return out;
}

bool has_header(const std::vector<Header>& headers, std::string_view name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const Header& header) { return core::iequals(header.name, name); });
}

bool has_header_value(const std::vector<Header>& headers, std::string_view name,
                      std::string_view value) {
  return std::any_of(headers.begin(), headers.end(), [&](const Header& header) {
    return core::iequals(header.name, name) && canonical_value(header.value) == value;
  });
}

// The mistakes that would only show as S3's "SignatureDoesNotMatch" far from their cause.
void check_request(const SignableRequest& request, std::string_view amz_date) {
  if (!is_amz_date(amz_date)) {
    throw std::invalid_argument("SigV4: the request time is not YYYYMMDDTHHMMSSZ");
  }
  // S3 requires host among the signed headers.
  if (!has_header(request.headers, "host")) {
    throw std::invalid_argument("SigV4: the request has no host header to sign");
  }
  for (const Header& header : request.headers) {
    if (core::iequals(header.name, "x-amz-date") && canonical_value(header.value) != amz_date) {
      throw std::invalid_argument("SigV4: x-amz-date differs from the signing time");
    }
  }
}

void append_digits(std::string& out, long value, int width) {
  std::string digits(static_cast<std::size_t>(width), '0');
  for (int i = width - 1; i >= 0 && value > 0; --i, value /= 10) {
    digits[static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
  }
  out += digits;
}

}  // namespace

SigningKey::SigningKey(std::string_view secret_key, std::string_view date, std::string_view region,
                       std::string_view service)
    : date_(date), region_(region), service_(service) {
  if (date.size() != 8 || !is_digits(date)) {
    throw std::invalid_argument("SigV4: the signing date is not YYYYMMDD");
  }
  std::string secret = "AWS4";
  secret += secret_key;
  Digest date_key = hmac_sha256(as_bytes(secret), date);
  Digest region_key = hmac_sha256(date_key, region);
  Digest service_key = hmac_sha256(region_key, service);
  key_ = hmac_sha256(service_key, "aws4_request");
  // Each intermediate key signs for a wider scope than the final one.
  OPENSSL_cleanse(secret.data(), secret.size());
  OPENSSL_cleanse(date_key.data(), date_key.size());
  OPENSSL_cleanse(region_key.data(), region_key.size());
  OPENSSL_cleanse(service_key.data(), service_key.size());
}

SigningKey::~SigningKey() { OPENSSL_cleanse(key_.data(), key_.size()); }

std::string SigningKey::scope() const {
  return date_ + "/" + region_ + "/" + service_ + "/aws4_request";
}

std::string SigningKey::signature(std::string_view string_to_sign) const {
  return to_hex(hmac_sha256(key_, string_to_sign));
}

Signed sign(const SignableRequest& request, const Credentials& credentials, std::string_view region,
            std::string_view service, std::string_view amz_date) {
  check_request(request, amz_date);
  // A session token that is not sent makes S3 reject the request as from an unknown key.
  if (!credentials.session_token.empty() &&
      !has_header_value(request.headers, "x-amz-security-token", credentials.session_token)) {
    throw std::invalid_argument("SigV4: the session token is not sent as x-amz-security-token");
  }
  const SigningKey key(credentials.secret_key, amz_date.substr(0, 8), region, service);
  return sign(request, credentials.access_key, key, amz_date);
}

Signed sign(const SignableRequest& request, std::string_view access_key, const SigningKey& key,
            std::string_view amz_date) {
  check_request(request, amz_date);
  if (amz_date.substr(0, 8) != key.date()) {
    throw std::invalid_argument("SigV4: the signing key is for another day than the request");
  }
  const CanonicalHeaders headers = canonical_headers(request.headers);
  const std::string scope = key.scope();

  Signed out;
  out.canonical_request = request.method + "\n" + canonical_path(request.path) + "\n" +
                          canonical_query(request.query) + "\n" + headers.block + "\n" +
                          headers.signed_headers + "\n" + request.payload_hash;
  out.string_to_sign = std::string(kAlgorithm) + "\n" + std::string(amz_date) + "\n" + scope +
                       "\n" + sha256_hex(out.canonical_request);
  out.signed_headers = headers.signed_headers;
  out.signature = key.signature(out.string_to_sign);
  out.authorization = std::string(kAlgorithm) + " Credential=" + std::string(access_key) + "/" +
                      scope + ", SignedHeaders=" + out.signed_headers +
                      ", Signature=" + out.signature;
  return out;
}

std::string uri_encode(std::string_view text, bool encode_slash) {
  static constexpr char kUpperHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (is_unreserved(byte) || (c == '/' && !encode_slash)) {
      out += c;
    } else {
      out += '%';
      out += kUpperHex[byte >> 4];
      out += kUpperHex[byte & 0xF];
    }
  }
  return out;
}

std::string canonical_path(std::string_view raw_path) {
  if (raw_path.empty()) return "/";
  return uri_encode(raw_path, false);
}

std::string canonical_query(const std::vector<QueryParameter>& query) {
  // Sorted on the encoded forms, byte by byte: the order S3 computes on its side.
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const QueryParameter& parameter : query) {
    encoded.emplace_back(uri_encode(parameter.name, true), uri_encode(parameter.value, true));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point when) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(when);
  const auto day = std::chrono::floor<std::chrono::days>(seconds);
  const std::chrono::year_month_day date{day};
  const std::chrono::hh_mm_ss time{seconds - day};
  std::string out;
  out.reserve(16);
  append_digits(out, static_cast<int>(date.year()), 4);
  append_digits(out, static_cast<unsigned>(date.month()), 2);
  append_digits(out, static_cast<unsigned>(date.day()), 2);
  out += 'T';
  append_digits(out, time.hours().count(), 2);
  append_digits(out, time.minutes().count(), 2);
  append_digits(out, static_cast<long>(time.seconds().count()), 2);
  out += 'Z';
  return out;
}

std::string sha256_hex(std::span<const std::uint8_t> bytes) {
  Digest hash{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), hash.data(), &length, EVP_sha256(), nullptr) != 1 ||
      length != hash.size()) {
    throw std::runtime_error("SHA-256 failed: " + core::take_openssl_errors());
  }
  return to_hex(hash);
}

std::string sha256_hex(std::string_view text) { return sha256_hex(as_bytes(text)); }

}  // namespace pullthrough::proxy::s3
