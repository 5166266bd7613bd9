// The admin listener's /cache endpoints, what `pullthrough cache` uses:
//
//   GET    /cache/refs[?glob=G]          the cached references (cache ls)
//   GET    /cache/usage                  bytes stored, pinned, evictable, per registry (cache du)
//   POST   /cache/gc[?dry_run=1]         a collection now (cache gc)
//   POST   /cache/rm?ref=R[&dry_run=1]   removes a reference and what only it keeps (cache rm)
//   GET    /cache/pins                   the pins
//   POST   /cache/pins?ref=R             pins (cache pin)
//   DELETE /cache/pins?ref=R             unpins (cache unpin)
//   POST   /cache/prefetch?refs=R1,R2[&platform=os/arch|all]   starts a prefetch: 202 {"id"}
//   GET    /cache/prefetch/<id>          its progress, per reference and blob (prefetch)
//
// Answers are JSON: sizes in bytes, times in RFC 3339. Query values are percent-encoded.
#pragma once

#include "core/asio.hpp"

#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "core/http_service.hpp"
#include "proxy/lifecycle/prefetch.hpp"
#include "proxy/lifecycle/retention.hpp"

namespace pullthrough::app {

boost::asio::awaitable<core::HttpResponse> serve_cache(proxy::Retention& retention,
                                                       proxy::Prefetcher* prefetcher,
                                                       const core::HttpRequest& request,
                                                       std::string_view path,
                                                       std::string_view query);

// The value of `name` in a query string ("a=1&b=x%2Fy"), percent-decoded; empty optional when
// absent or when its encoding is malformed.
std::optional<std::string> query_value(std::string_view query, std::string_view name);
// Percent-encodes everything but unreserved characters (RFC 3986).
std::string percent_encode(std::string_view text);

}  // namespace pullthrough::app
