// Which platforms of an image index to fetch: "os/arch" or "os/arch/variant" ("linux/amd64",
// "linux/arm64/v8"), or "all". Used by prefetch (the configuration's and the command's).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pullthrough::config {

struct PlatformFilter {
  std::string os, architecture, variant;
  bool all = false;
  // Nothing, and `error` says why, for a text that is neither `all` nor os/arch[/variant] (each
  // part 1 to 32 of [a-z0-9_-]).
  static std::optional<PlatformFilter> parse(std::string_view text, std::string& error);
  std::string to_string() const;
  bool operator==(const PlatformFilter&) const = default;
};

}  // namespace pullthrough::config
