#include "proxy/byte_range.hpp"

#include <algorithm>

#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

// 19 digits never exceed 9999999999999999999, which is below 2^64 - 1.
constexpr std::size_t kMaxDigits = 19;
constexpr std::string_view kBytesUnit = "bytes";

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view text) {
  while (!text.empty() && is_ows(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_ows(text.back())) text.remove_suffix(1);
  return text;
}

using core::ascii_lower;

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

// 1*DIGIT, capped at kMaxDigits.
std::optional<std::uint64_t> parse_number(std::string_view digits) {
  if (digits.empty() || digits.size() > kMaxDigits) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

RangeDecision whole() { return RangeDecision{}; }

RangeDecision unsatisfiable() {
  return RangeDecision{.kind = RangeKind::unsatisfiable, .range = {}};
}

RangeDecision partial(std::uint64_t first, std::uint64_t last) {
  return RangeDecision{.kind = RangeKind::partial, .range = {.first = first, .last = last}};
}

}  // namespace

RangeDecision decide_range(std::optional<std::string_view> header, std::uint64_t size) {
  if (!header) return whole();
  const std::string_view value = trim_ows(*header);

  const std::size_t equals = value.find('=');
  if (equals == std::string_view::npos) return whole();
  if (!equals_ignoring_case(value.substr(0, equals), kBytesUnit)) return whole();

  const std::string_view spec = trim_ows(value.substr(equals + 1));
  if (spec.find(',') != std::string_view::npos) return whole();  // more than one range-spec

  const std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return whole();
  const std::string_view first_text = spec.substr(0, dash);
  const std::string_view last_text = spec.substr(dash + 1);

  if (first_text.empty()) {  // suffix-range: "-" suffix-length
    const std::optional<std::uint64_t> suffix = parse_number(last_text);
    if (!suffix) return whole();
    if (*suffix == 0 || size == 0) return unsatisfiable();
    return partial(size - std::min(*suffix, size), size - 1);
  }

  // int-range: first-pos "-" [ last-pos ]
  const std::optional<std::uint64_t> first = parse_number(first_text);
  if (!first) return whole();
  std::uint64_t last = size == 0 ? 0 : size - 1;
  if (!last_text.empty()) {
    const std::optional<std::uint64_t> requested_last = parse_number(last_text);
    if (!requested_last || *requested_last < *first) return whole();
    last = std::min(last, *requested_last);
  }
  if (*first >= size) return unsatisfiable();
  return partial(*first, last);
}

std::string content_range(const ByteRange& range, std::uint64_t size) {
  return "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" +
         std::to_string(size);
}

std::string unsatisfied_content_range(std::uint64_t size) {
  return "bytes */" + std::to_string(size);
}

}  // namespace pullthrough::proxy
