#include "core/units.hpp"

#include <array>
#include <ctime>
#include <limits>

#include <fmt/format.h>

namespace pullthrough::core {
namespace {

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

// Longest names first so "ms" is tried before "m".
constexpr std::array<Unit, 5> kDurationUnits{{
    {"ms", 1},
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
}};

constexpr std::array<Unit, 9> kSizeUnits{{
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"TiB", 1ULL << 40},
    {"KB", 1'000ULL},
    {"MB", 1'000'000ULL},
    {"GB", 1'000'000'000ULL},
    {"TB", 1'000'000'000'000ULL},
    {"B", 1},
}};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads leading digits into value; false on overflow or when there are none.
bool read_number(std::string_view& text, std::uint64_t& value) {
  std::size_t i = 0;
  value = 0;
  while (i < text.size() && is_digit(text[i])) {
    auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return false;
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return false;
  text.remove_prefix(i);
  return true;
}

bool checked_multiply_add(std::uint64_t& total, std::uint64_t value, std::uint64_t factor) {
  if (value != 0 && factor > std::numeric_limits<std::uint64_t>::max() / value) return false;
  std::uint64_t product = value * factor;
  if (total > std::numeric_limits<std::uint64_t>::max() - product) return false;
  total += product;
  return true;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  if (text == "0") return Duration::zero();
  if (text.empty()) return std::nullopt;
  std::uint64_t total = 0;
  std::uint64_t previous_factor = std::numeric_limits<std::uint64_t>::max();
  while (!text.empty()) {
    std::uint64_t value = 0;
    if (!read_number(text, value)) return std::nullopt;
    const Unit* unit = nullptr;
    for (const auto& candidate : kDurationUnits) {
      if (text.starts_with(candidate.name)) {
        unit = &candidate;
        break;
      }
    }
    // Each unit at most once and largest first: "30s1m" or "1m1m" is more likely a typo than
    // intent.
    if (unit == nullptr || unit->factor >= previous_factor) return std::nullopt;
    previous_factor = unit->factor;
    text.remove_prefix(unit->name.size());
    if (!checked_multiply_add(total, value, unit->factor)) return std::nullopt;
  }
  if (total > static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max())) {
    return std::nullopt;
  }
  return Duration(static_cast<Duration::rep>(total));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t value = 0;
  if (!read_number(text, value)) return std::nullopt;
  if (text.empty()) return value;
  for (const auto& unit : kSizeUnits) {
    if (text == unit.name) {
      std::uint64_t total = 0;
      if (!checked_multiply_add(total, value, unit.factor)) return std::nullopt;
      return total;
    }
  }
  return std::nullopt;
}

std::string format_duration(Duration duration) {
  auto remaining = static_cast<std::uint64_t>(duration.count() < 0 ? 0 : duration.count());
  if (remaining == 0) return "0s";
  std::string out;
  // Largest unit first, the reverse of the parse table's ordering for "ms".
  for (const auto& unit : {kDurationUnits[1], kDurationUnits[2], kDurationUnits[3],
                           kDurationUnits[4], kDurationUnits[0]}) {
    if (remaining >= unit.factor) {
      out += std::to_string(remaining / unit.factor);
      out += unit.name;
      remaining %= unit.factor;
    }
  }
  return out;
}

std::string format_size(std::uint64_t bytes) {
  static constexpr std::array<Unit, 4> kBinary{
      {{"TiB", 1ULL << 40}, {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}}};
  if (bytes != 0) {
    for (const auto& unit : kBinary) {
      if (bytes % unit.factor == 0)
        return std::to_string(bytes / unit.factor) + std::string(unit.name);
    }
  }
  return std::to_string(bytes) + "B";
}

std::string format_rfc3339(SystemTime when) {
  auto since_epoch = when.time_since_epoch();
  auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
  std::time_t t = static_cast<std::time_t>(seconds.count());
  std::tm utc{};
  gmtime_r(&t, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     millis.count());
}

std::optional<SystemTime> parse_rfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.mmm]Z
  auto digits = [&text](std::size_t at, std::size_t count) -> std::optional<int> {
    if (at + count > text.size()) return std::nullopt;
    int value = 0;
    for (std::size_t i = at; i < at + count; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      value = value * 10 + (text[i] - '0');
    }
    return value;
  };
  auto at = [&text](std::size_t i, char c) { return i < text.size() && text[i] == c; };
  auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
  auto hour = digits(11, 2), minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || !at(4, '-') || !at(7, '-') ||
      !at(10, 'T') || !at(13, ':') || !at(16, ':')) {
    return std::nullopt;
  }
  int millis = 0;
  std::size_t end = 19;
  if (at(19, '.')) {
    auto m = digits(20, 3);
    if (!m) return std::nullopt;
    millis = *m;
    end = 23;
  }
  if (!at(end, 'Z') || end + 1 != text.size()) return std::nullopt;
  std::chrono::year_month_day date{std::chrono::year{*year},
                                   std::chrono::month{static_cast<unsigned>(*month)},
                                   std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok() || *hour > 23 || *minute > 59 || *second > 59) return std::nullopt;
  return SystemTime{std::chrono::sys_days{date}.time_since_epoch() + std::chrono::hours(*hour) +
                    std::chrono::minutes(*minute) + std::chrono::seconds(*second) +
                    std::chrono::milliseconds(millis)};
}

}  // namespace pullthrough::core
