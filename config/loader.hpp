// Reading the YAML configuration into a validated config::Config.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace pullthrough::config {

// One problem in a configuration file, located at the offending key or value.
struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 when there is no position (e.g. the file cannot be read)
  int column = 0;   // 1-based
  std::string key;  // dotted path such as "dns.cache.max_entries" or "registries[1].host"
  std::string message;

  // "pullthrough.yaml:12:5: dns.answer_ttl: expected a duration like \"10s\", got \"10x\"".
  std::string to_string() const;
};

// Either a config or every error found: the loader does not stop at the first problem, so one run
// of `check-config` reports them all.
struct LoadResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;
  // Settings that are valid but do not (yet) do what their name says: `check-config` prints them
  // and `serve` logs them at start, so that no setting silently does nothing.
  std::vector<ConfigError> warnings;
};

LoadResult load_file(const std::string& path);
// file_name is only used in error messages.
LoadResult load_string(std::string_view yaml, std::string_view file_name);

}  // namespace pullthrough::config
