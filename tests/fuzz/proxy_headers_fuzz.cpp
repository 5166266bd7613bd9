// Fuzzes the proxy's parsers of header and body text from the network: a client's Range and
// Accept headers, an upstream's WWW-Authenticate challenges (and the token URL built from them),
// the token endpoint's JSON answer, and the Location of an upstream's redirect. The first byte
// picks the parser; each result must keep its promises.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/text.hpp"
#include "fuzz_check.hpp"
#include "proxy/byte_range.hpp"
#include "proxy/media_types.hpp"
#include "proxy/upstream/auth_challenge.hpp"
#include "proxy/upstream/url.hpp"

namespace {

using namespace pullthrough::proxy;

using pullthrough::fuzz::check;

bool header_safe(std::string_view text) {
  for (unsigned char c : text) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

void range(std::string_view input) {
  // The size comes from the input too, so small sizes and edge values are both reached.
  std::uint64_t size = input.empty() ? 0 : static_cast<unsigned char>(input[0]) * 1000ULL;
  if (!input.empty()) input.remove_prefix(1);
  auto decision = decide_range(input, size);
  if (decision.kind == RangeKind::partial) {
    check(decision.range.first <= decision.range.last, "first <= last");
    check(decision.range.last < size, "last inside the blob");
    check(decision.range.length() <= size, "length within size");
    auto text = content_range(decision.range, size);
    check(text.rfind("bytes ", 0) == 0, "Content-Range starts with the unit");
  }
  if (decision.kind == RangeKind::unsatisfiable) {
    check(unsatisfied_content_range(size) == "bytes */" + std::to_string(size), "416 format");
  }
}

void challenges(std::string_view input) {
  auto parsed = parse_challenges(input);
  if (!parsed) return;
  check(!parsed->empty(), "a parsed value holds a challenge");
  for (const auto& c : *parsed) {
    check(!c.scheme.empty(), "scheme not empty");
    for (char ch : c.scheme) check(ch < 'A' || ch > 'Z', "scheme lower case");
    for (const auto& [key, value] : c.params) {
      for (char ch : key) check(ch < 'A' || ch > 'Z', "param name lower case");
    }
    if (auto url = token_request_url(c)) {
      std::string scheme = url->substr(0, url->find("://") + 3);
      for (auto& ch : scheme) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
      check(scheme == "https://" || scheme == "http://", "token URL is absolute http(s)");
      check(header_safe(*url), "token URL has no space or control character");
    }
  }
}

void token(std::string_view input) {
  auto parsed = parse_token_response(input);
  if (!parsed) return;
  check(!parsed->value.empty(), "token not empty");
  check(header_safe(parsed->value), "token fits an Authorization header");
  check(parsed->expires_in.count() >= 60 && parsed->expires_in.count() <= 86400,
        "lifetime within bounds");
}

void accept(std::string_view input) {
  // A type is admitted only by a range that names it, by a wildcard, or by no Accept at all.
  std::string folded = pullthrough::core::ascii_lower(input);
  bool blank = folded.find_first_not_of(" \t") == std::string::npos;
  for (auto type : {kOciIndex, kOciManifest, kDockerList, kDockerManifest}) {
    if (accepts(input, type)) {
      check(
          blank || folded.find(type) != std::string::npos || folded.find('*') != std::string::npos,
          "admitted by a range that names it or a wildcard");
    }
  }
  auto type = media_type_of(input);
  check(type.find(';') == std::string::npos, "media type without parameters");
  for (char ch : type) check(ch < 'A' || ch > 'Z', "media type lower case");
}

void location(std::string_view input) {
  Origin base{"https", "registry.test", 443};
  auto split = input.find('\n');
  std::string_view base_target =
      split == std::string_view::npos ? "/v2/a/blobs/x" : input.substr(0, split);
  std::string_view value = split == std::string_view::npos ? input : input.substr(split + 1);
  // The base is the target of a request we sent, which passed the route grammar: clean text.
  if (!header_safe(base_target)) return;
  auto resolved = resolve_location(base, base_target, value);
  if (!resolved) return;
  check(resolved->origin.scheme == "https" || resolved->origin.scheme == "http", "http(s) only");
  check(!resolved->origin.host.empty(), "a host");
  check(resolved->origin.port != 0, "a port");
  check(header_safe(resolved->origin.host), "host fits a Host field");
  if (base_target.starts_with('/')) {
    check(!resolved->target.empty() && resolved->target.front() == '/', "origin-form target");
  }
  check(resolved->target.find_first_of(" \r\n") == std::string::npos, "target fits a request line");
  check(resolved->origin.host.find('@') == std::string::npos, "no userinfo");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      range(input);
      break;
    case 1:
      challenges(input);
      break;
    case 2:
      token(input);
      break;
    case 3:
      accept(input);
      break;
    default:
      location(input);
      break;
  }
  return 0;
}
