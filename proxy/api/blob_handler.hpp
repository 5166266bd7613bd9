// GET and HEAD of /v2/<name>/blobs/<digest>: a stored copy with byte ranges, or a fetch from
// upstream streamed to the client while it is written and verified (several clients asking for
// the same blob share one fetch). A transfer the fetch cannot finish is cut off, never completed
// with bytes that were not verified.
#pragma once

#include "core/asio.hpp"

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "proxy/api/access_check.hpp"
#include "proxy/api/api.hpp"
#include "proxy/api/http_session.hpp"
#include "proxy/cached_blobs.hpp"

namespace pullthrough::proxy {

class BlobHandler {
 public:
  // All must outlive the handler.
  BlobHandler(CachedBlobs& blobs, RegistryCounters& counters, spdlog::logger& log,
              AccessCheck& access)
      : blobs_(blobs), counters_(counters), log_(log), access_(access) {}

  asio::awaitable<bool> serve(HttpSession& session, const ApiRequest& request);

 private:
  asio::awaitable<bool> serve_stored(HttpSession& session, const ApiRequest& request,
                                     CachedBlobs::Copy copy);
  asio::awaitable<bool> serve_fetch(HttpSession& session, const ApiRequest& request);
  asio::awaitable<bool> send_fetch_failure(HttpSession& session, const ApiRequest& request,
                                           const FetchProgress& progress);
  asio::awaitable<bool> head_upstream(HttpSession& session, const ApiRequest& request);
  // False when the transfer did not complete; the connection is then to be cut off.
  bool finished(HttpSession& session, StreamStatus status, BlobFetch* fetch);

  CachedBlobs& blobs_;
  RegistryCounters& counters_;
  spdlog::logger& log_;
  AccessCheck& access_;
};

}  // namespace pullthrough::proxy
