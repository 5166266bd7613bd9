// GET and HEAD of /v2/<name>/tags/list and /v2/<name>/referrers/<digest>: listings that change
// upstream at any time, so they are passed through, not cached. The query (n, last,
// artifactType) goes upstream as sent; the pagination Link and OCI-Filters-Applied come back.
#pragma once

#include "core/asio.hpp"

#include <cstddef>

#include <boost/asio/awaitable.hpp>

#include "proxy/api/api.hpp"
#include "proxy/api/http_session.hpp"

namespace pullthrough::proxy {

class ListingHandler {
 public:
  // `counters` must outlive the handler. A listing larger than `max_bytes` is refused with 502.
  ListingHandler(RegistryCounters& counters, std::size_t max_bytes)
      : counters_(counters), max_bytes_(max_bytes) {}

  asio::awaitable<bool> serve(HttpSession& session, const ApiRequest& request);

 private:
  RegistryCounters& counters_;
  std::size_t max_bytes_;
};

}  // namespace pullthrough::proxy
