// proxy/api: the OCI distribution API as clients see it. One HTTP session per TLS connection
// (http_session.hpp) reads requests and writes responses; every request header passes
// check_request (check_request.hpp) before a handler sees it; and one handler per kind of
// endpoint answers it: manifests, blobs, and the listings passed upstream (tags/list and
// referrers). Handlers reach the cache through interfaces that say what they need of it
// (proxy/manifest_cache.hpp, proxy/cached_blobs.hpp), never the store or the index directly.
// Requests the cache does not answer itself (push, listings, the token endpoint, other paths)
// are passed upstream with the client's own credentials (forward_handler.hpp, token_handler.hpp);
// who may read cached content is decided by access_check.hpp.
#pragma once

#include "core/asio.hpp"

#include <boost/beast/http/message.hpp>

#include "config/config.hpp"
#include "core/counters.hpp"
#include "proxy/route.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

#define PULLTHROUGH_REGISTRY_COUNTERS(COUNTER)                                                  \
  COUNTER(requests, "registry API requests from clients (not health checks)")                   \
  COUNTER(health_checks, "GET /v2/ requests from a DNS side's health check")                    \
  COUNTER(requests_rejected, "requests refused: malformed, bad path, wrong Host, a body")       \
  COUNTER(blob_hits, "blob requests answered from the cache")                                   \
  COUNTER(blob_misses, "blob requests that needed an upstream fetch (leaders and followers)")   \
  COUNTER(bytes_from_cache, "blob bytes sent to clients from the cache")                        \
  COUNTER(bytes_while_fetching, "blob bytes sent to clients while their fetch was running")     \
  COUNTER(transfers_aborted, "blob transfers cut off because the fetch failed")                 \
  COUNTER(client_disconnects, "blob transfers the client gave up on")                           \
  COUNTER(passthrough_requests, "requests passed upstream as sent (listings, other paths)")     \
  COUNTER(push_requests, "push requests (uploads, manifest PUT, DELETE) passed upstream")       \
  COUNTER(push_bytes, "request body bytes of pushes passed upstream")                           \
  COUNTER(token_requests, "token requests forwarded to a registry's token realm")               \
  COUNTER(offline_tokens, "tokens issued by the appliance: the token realm was unreachable")    \
  COUNTER(visibility_checks, "anonymous HEADs upstream to tell whether a repository is public") \
  COUNTER(access_checks, "HEADs upstream with a client's credentials to check its access")      \
  COUNTER(access_refused, "cache requests refused: upstream did not accept the client")         \
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
  const Route& route;  // an empty Route for a path outside the API
  bool head;           // HEAD: answer with the header alone
  const config::RegistryConfig& registry;
  RegistryUpstream& upstream;
  // The Host field as the client sent it (the TLS server name when it sent none): where a
  // Location or a token realm must send it back to.
  std::string client_host;
  // The client's Authorization field; empty when it sent none.
  std::string_view authorization;
  // How the cache asks upstream on this client's behalf, once access_check cleared it.
  UpstreamCredentials credentials;
};

}  // namespace pullthrough::proxy
