#include "config/platform.hpp"

#include <algorithm>
#include <vector>

namespace pullthrough::config {

std::optional<PlatformFilter> PlatformFilter::parse(std::string_view text, std::string& error) {
  PlatformFilter filter;
  if (text == "all") {
    filter.all = true;
    return filter;
  }
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    auto slash = text.find('/', start);
    parts.emplace_back(text.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  bool ok = parts.size() == 2 || parts.size() == 3;
  for (const auto& part : parts) {
    ok = ok && !part.empty() && part.size() <= 32 &&
         std::all_of(part.begin(), part.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
         });
  }
  if (!ok) {
    error = "\"" + std::string(text) +
            "\" is not os/arch[/variant] (linux/amd64, linux/arm64/v8) or all";
    return std::nullopt;
  }
  filter.os = parts[0];
  filter.architecture = parts[1];
  if (parts.size() == 3) filter.variant = parts[2];
  return filter;
}

std::string PlatformFilter::to_string() const {
  if (all) return "all";
  return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
}

}  // namespace pullthrough::config
