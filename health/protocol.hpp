// What the cache and the DNS side share of the health protocol, in the answer to `GET /v2/`:
// - `Pullthrough-Storage: ok`, `full` or `unwritable`: the DNS side's check fails a cache whose
//   value is not "ok" (health/cache_probe.hpp, proxy/storage_monitor.hpp);
// - `Pullthrough-Leaving: shutdown` while a cache hands over before it stops: the check takes it
//   out at once, without waiting for `health.fall` failures.
// Clients ignore both; the answer stays 200 so that a pull already under way is unaffected. The
// check's request carries its own User-Agent, so the cache counts checks apart from clients.
#pragma once

#include <string_view>

namespace pullthrough::health {

inline constexpr std::string_view kHealthCheckUserAgent = "pullthrough-health-check";

inline constexpr std::string_view kStorageHeader = "Pullthrough-Storage";
inline constexpr std::string_view kStorageOk = "ok";

inline constexpr std::string_view kLeavingHeader = "Pullthrough-Leaving";
inline constexpr std::string_view kLeavingShutdown = "shutdown";

}  // namespace pullthrough::health
