// Human-written durations ("500ms", "10s", "1h30m", "30d") and sizes ("512MiB", "100GiB", "1GB").
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pullthrough::core {

using SystemTime = std::chrono::system_clock::time_point;

using Duration = std::chrono::milliseconds;

// One or more <digits><unit> groups, units ms, s, m, h, d, largest first ("1h30m"). "0" alone is
// accepted. Rejects negative values, unknown units, fractions and anything that overflows.
std::optional<Duration> parse_duration(std::string_view text);

// <digits> with an optional unit: B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers
// of 1000). A bare number is bytes. Rejects overflow beyond 2^64-1.
std::optional<std::uint64_t> parse_size(std::string_view text);

// The shortest exact spelling: 90000ms -> "1m30s", 0 -> "0s".
std::string format_duration(Duration duration);
// RFC 3339 in UTC with milliseconds: "2026-11-29T10:31:09.123Z".
std::string format_rfc3339(SystemTime when);
// The inverse of format_rfc3339, also without the milliseconds ("2026-11-29T10:31:09Z"); nothing
// else (no offsets, no lower-case letters).
std::optional<SystemTime> parse_rfc3339(std::string_view text);

// The largest binary unit that divides exactly: 1073741824 -> "1GiB", 1000 -> "1000B".
std::string format_size(std::uint64_t bytes);

}  // namespace pullthrough::core
