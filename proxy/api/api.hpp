// proxy/api: the OCI distribution API as clients see it. One HTTP session per TLS connection
// (http_session.hpp) reads requests and writes responses; every request header passes
// check_request (check_request.hpp) before a handler sees it; and one handler per kind of
// endpoint answers it: manifests, blobs, and the listings passed upstream (tags/list and
// referrers). Handlers reach the cache through interfaces that say what they need of it
// (proxy/manifest_cache.hpp, proxy/cached_blobs.hpp), never the store or the index directly.
// An uploads handler for push would be one more file here.
#pragma once

#include "core/asio.hpp"

#include <boost/beast/http/message.hpp>

#include "config/config.hpp"
#include "core/counters.hpp"
#include "proxy/route.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

#define PULLTHROUGH_REGISTRY_COUNTERS(COUNTER)                                                \
  COUNTER(requests, "registry API requests from clients (not health checks)")                 \
  COUNTER(health_checks, "GET /v2/ requests from a DNS side's health check")                  \
  COUNTER(requests_rejected, "requests refused: malformed, bad path, wrong Host, a body")     \
  COUNTER(blob_hits, "blob requests answered from the cache")                                 \
  COUNTER(blob_misses, "blob requests that needed an upstream fetch (leaders and followers)") \
  COUNTER(bytes_from_cache, "blob bytes sent to clients from the cache")                      \
  COUNTER(bytes_while_fetching, "blob bytes sent to clients while their fetch was running")   \
  COUNTER(transfers_aborted, "blob transfers cut off because the fetch failed")               \
  COUNTER(client_disconnects, "blob transfers the client gave up on")                         \
  COUNTER(passthrough_requests, "tags/list and referrers requests passed upstream")           \
  COUNTER(upstream_unavailable, "requests answered 503 because upstream was unreachable")

struct RegistryCounters {
  PULLTHROUGH_REGISTRY_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(PULLTHROUGH_REGISTRY_COUNTERS)
};

// Tells a client (and a test) where an answer came from: "hit", "miss", "coalesced", "ok", "stale".
inline constexpr std::string_view kCacheHeader = "Pullthrough-Cache";

// One request as a handler gets it: checked, routed, and tied to the registry its connection is
// for. Valid for the handler's call.
struct ApiRequest {
  const http::request_header<>& header;
  const Route& route;
  bool head;  // HEAD: answer with the header alone
  const config::RegistryConfig& registry;
  RegistryUpstream& upstream;
};

}  // namespace pullthrough::proxy
