// The shape of a /metrics text, for tests that pin what families exist rather than their values:
// the HELP and TYPE lines as they are, and each sample as its name and label names
// (`pullthrough_upstream_requests_total{registry}`), without label values or the value.
#pragma once

#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace pullthrough::core::testing {

// One sample line, `name{a="x",b="y"} 3`, as `name{a,b}`; `name 3` as `name`.
inline std::string sample_shape(std::string_view line) {
  auto name_end = line.find_first_of("{ ");
  std::string out(line.substr(0, name_end));
  if (name_end == std::string_view::npos || line[name_end] != '{') return out;
  out += '{';
  std::size_t at = name_end + 1;
  bool first = true;
  while (at < line.size() && line[at] != '}') {
    auto equals = line.find('=', at);
    if (equals == std::string_view::npos) break;
    out += (first ? "" : ",") + std::string(line.substr(at, equals - at));
    first = false;
    // The value is quoted; a backslash escapes the next character.
    at = equals + 2;
    while (at < line.size() && line[at] != '"') at += line[at] == '\\' ? 2 : 1;
    at += 1;
    if (at < line.size() && line[at] == ',') ++at;
  }
  return out + '}';
}

// Every distinct HELP, TYPE and sample shape line of `text`, sorted: the order in which
// collectors run is not part of the format.
inline std::vector<std::string> metrics_shape(std::string_view text) {
  std::set<std::string> lines;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    lines.insert(line.starts_with("# ") ? line : sample_shape(line));
  }
  return {lines.begin(), lines.end()};
}

}  // namespace pullthrough::core::testing
