#include "config/ref_glob.hpp"

#include <cstddef>

#include "core/text.hpp"

namespace pullthrough::config {
namespace {

constexpr std::size_t kMaxPattern = 512;

bool lower_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// `*` matches any run of characters of `text`; everything else matches itself. Greedy, going
// back to the last star on a mismatch: linear for the patterns people write, quadratic at worst.
bool wildcard(std::string_view pattern, std::string_view text) {
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star = std::string_view::npos;
  std::size_t resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::vector<std::string_view> split(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = text.find('/', start);
    parts.push_back(text.substr(start, slash - start));
    if (slash == std::string_view::npos) return parts;
    start = slash + 1;
  }
}

}  // namespace

std::optional<RefGlob> RefGlob::compile(std::string_view pattern, std::string& error) {
  if (pattern.empty()) {
    error = "empty pattern";
    return std::nullopt;
  }
  if (pattern.size() > kMaxPattern) {
    error = "longer than " + std::to_string(kMaxPattern) + " characters";
    return std::nullopt;
  }
  if (pattern.find('@') != std::string_view::npos) {
    error = "a digest names content, not repositories: give it as a reference, not in a pattern";
    return std::nullopt;
  }
  RefGlob glob;
  glob.pattern_ = std::string(pattern);
  std::string_view repository = pattern;
  std::size_t last_slash = pattern.rfind('/');
  std::size_t colon = pattern.find(':', last_slash == std::string_view::npos ? 0 : last_slash);
  if (colon != std::string_view::npos) {
    repository = pattern.substr(0, colon);
    std::string_view tag = pattern.substr(colon + 1);
    if (tag.empty()) {
      error = "nothing after ':': leave the ':' out to match every tag";
      return std::nullopt;
    }
    for (char c : tag) {
      if (c == '*') {
        if (glob.tag_.empty() || glob.tag_.back() != '*') glob.tag_ += c;  // "**" is "*" here
        continue;
      }
      if (!lower_or_digit(c) && !(c >= 'A' && c <= 'Z') && c != '_' && c != '.' && c != '-') {
        error = std::string("'") + c + "' cannot be in a tag";
        return std::nullopt;
      }
      glob.tag_ += c;
    }
    glob.has_tag_ = true;
  }
  bool first = true;
  for (std::string_view segment : split(repository)) {
    if (segment.empty()) {
      error = "an empty path segment (\"//\", or '/' at an end)";
      return std::nullopt;
    }
    if (segment.find_first_not_of('.') == std::string_view::npos) {
      error = "a path segment of dots (\"..\") is not a repository name";
      return std::nullopt;
    }
    if (segment != "**" && segment.find("**") != std::string_view::npos) {
      error = "\"**\" must be a whole path segment; use \"*\" within one";
      return std::nullopt;
    }
    std::string compiled;
    for (char c : segment) {
      if (first && c >= 'A' && c <= 'Z') {
        compiled += core::ascii_lower(c);  // host names compare without case
        continue;
      }
      bool allowed =
          lower_or_digit(c) || c == '.' || c == '-' || c == '_' || c == '*' || (first && c == ':');
      if (!allowed) {
        error = c >= 'A' && c <= 'Z' ? "repository names are lower case"
                                     : std::string("'") + c + "' cannot be in a repository name";
        return std::nullopt;
      }
      compiled += c;
    }
    glob.segments_.push_back(std::move(compiled));
    first = false;
  }
  return glob;
}

bool RefGlob::matches(std::string_view repository, std::string_view tag) const {
  if (has_tag_ && (tag.empty() || !wildcard(tag_, tag))) return false;
  std::vector<std::string_view> parts = split(repository);
  const std::size_t m = segments_.size();
  const std::size_t n = parts.size();
  // reach[i][j]: the first i pattern segments match the first j segments of the repository.
  std::vector<std::vector<char>> reach(m + 1, std::vector<char>(n + 1, 0));
  reach[0][0] = 1;
  for (std::size_t i = 1; i <= m; ++i) {
    const std::string& segment = segments_[i - 1];
    if (segment == "**") {
      // Any number of segments; at least one as the pattern's last.
      // reach[i][j] = any reach[i - 1][k] for k <= j - least: a running "or".
      const std::size_t least = i == m ? 1 : 0;
      char any = 0;
      for (std::size_t j = least; j <= n; ++j) {
        any = static_cast<char>(any | reach[i - 1][j - least]);
        reach[i][j] = any;
      }
      continue;
    }
    for (std::size_t j = 1; j <= n; ++j) {
      reach[i][j] = static_cast<char>(reach[i - 1][j - 1] && wildcard(segment, parts[j - 1]));
    }
  }
  return reach[m][n] != 0;
}

}  // namespace pullthrough::config
