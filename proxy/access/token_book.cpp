#include "proxy/access/token_book.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

constexpr std::string_view kOfflinePrefix = "pullthrough-offline.";
// 256 bits: an offline token unlocks a client's grants, so it must not be guessable.
constexpr std::size_t kOfflineRandomBytes = 32;

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

// The token of "Bearer <token>" (RFC 6750 2.1: b64token, one SP; any blanks accepted); empty for
// another scheme, no token, or a token with blanks inside.
std::string_view bearer_token(std::string_view authorization) {
  authorization = trim(authorization);
  const std::size_t scheme_end = authorization.find_first_of(" \t");
  if (scheme_end == std::string_view::npos) return {};
  if (!core::iequals(authorization.substr(0, scheme_end), "bearer")) return {};
  const std::string_view token = trim(authorization.substr(scheme_end));
  if (token.find_first_of(" \t") != std::string_view::npos) return {};
  return token;
}

std::string token_key(std::string_view token) {
  std::string key(32, '\0');
  unsigned int length = 0;
  if (EVP_Digest(token.data(), token.size(), reinterpret_cast<unsigned char*>(key.data()), &length,
                 EVP_sha256(), nullptr) != 1 ||
      length != key.size()) {
    throw std::runtime_error("SHA-256 of a token failed");
  }
  return key;
}

// RFC 4648 5, without padding.
std::string base64url(const std::uint8_t* bytes, std::size_t size) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((size * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t group = (std::uint32_t{bytes[i]} << 16) |
                                (std::uint32_t{bytes[i + 1]} << 8) | std::uint32_t{bytes[i + 2]};
    out += kAlphabet[(group >> 18) & 0x3F];
    out += kAlphabet[(group >> 12) & 0x3F];
    out += kAlphabet[(group >> 6) & 0x3F];
    out += kAlphabet[group & 0x3F];
  }
  if (size - i == 1) {
    const std::uint32_t group = std::uint32_t{bytes[i]} << 16;
    out += kAlphabet[(group >> 18) & 0x3F];
    out += kAlphabet[(group >> 12) & 0x3F];
  } else if (size - i == 2) {
    const std::uint32_t group =
        (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8);
    out += kAlphabet[(group >> 18) & 0x3F];
    out += kAlphabet[(group >> 12) & 0x3F];
    out += kAlphabet[(group >> 6) & 0x3F];
  }
  return out;
}

}  // namespace

TokenBook::TokenBook(const core::Clock& clock, std::size_t max_tokens)
    : clock_(clock), max_tokens_(std::max<std::size_t>(max_tokens, 1)) {}

void TokenBook::insert(std::string key, Holder holder) {
  const auto now = clock_.now();
  std::lock_guard lock(mutex_);
  if (auto old = tokens_.find(key); old != tokens_.end()) {
    by_expiry_.erase({old->second.expires, key});
    tokens_.erase(old);
  }
  // Expired tokens are dropped as new ones come, so the book holds mostly live ones.
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) {
    tokens_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
  if (holder.expires <= now) return;
  while (tokens_.size() >= max_tokens_) {
    tokens_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
  by_expiry_.emplace(holder.expires, key);
  tokens_.emplace(std::move(key), holder);
}

void TokenBook::issued(std::string_view token, const ClientIdentity& holder,
                       std::chrono::seconds lifetime) {
  if (token.empty()) return;
  insert(token_key(token), Holder{holder, false, clock_.now() + lifetime});
}

std::string TokenBook::issue_offline(const ClientIdentity& holder, std::chrono::seconds lifetime) {
  std::array<std::uint8_t, kOfflineRandomBytes> random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    throw std::runtime_error("no random bytes for an offline token");
  }
  std::string token(kOfflinePrefix);
  token += base64url(random.data(), random.size());
  insert(token_key(token), Holder{holder, true, clock_.now() + lifetime});
  return token;
}

std::optional<TokenBook::Holder> TokenBook::holder_of(std::string_view authorization) const {
  const std::string_view token = bearer_token(authorization);
  if (token.empty()) return std::nullopt;
  const std::string key = token_key(token);
  const auto now = clock_.now();
  std::lock_guard lock(mutex_);
  const auto found = tokens_.find(key);
  if (found == tokens_.end() || found->second.expires <= now) return std::nullopt;
  return found->second;
}

bool TokenBook::is_offline(std::string_view authorization) {
  return bearer_token(authorization).starts_with(kOfflinePrefix);
}

std::size_t TokenBook::size() const {
  std::lock_guard lock(mutex_);
  return tokens_.size();
}

}  // namespace pullthrough::proxy
