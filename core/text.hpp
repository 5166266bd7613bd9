// ASCII text helpers for protocol text (host names, header tokens, media types), which the
// specifications define over ASCII only: never the C locale's idea of a letter.
#pragma once

#include <string>
#include <string_view>

namespace pullthrough::core {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// Untrusted text for a log line or an error message: at most `limit` characters of it, printable
// ASCII only, with "..." when cut. Other bytes, and the quote and backslash that would end or
// escape a quoted string, become '?'.
inline std::string printable(std::string_view text, std::size_t limit) {
  std::string out(text.substr(0, limit));
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') c = '?';
  }
  if (text.size() > limit) out += "...";
  return out;
}

}  // namespace pullthrough::core
