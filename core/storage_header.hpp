// The one piece of the health protocol the cache and the DNS side share: `GET /v2/` on a
// pullthrough cache carries `Pullthrough-Storage: ok`, `full` or `unwritable`, and the DNS side's
// check fails a cache whose value is not "ok" (dns/cache_probe.hpp, proxy/storage_monitor.hpp).
#pragma once

#include <string_view>

namespace pullthrough::core {

inline constexpr std::string_view kStorageHeader = "Pullthrough-Storage";
inline constexpr std::string_view kStorageOk = "ok";

}  // namespace pullthrough::core
