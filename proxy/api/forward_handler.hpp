// Requests the cache passes upstream as the client made them, with the client's own
// Authorization: pushes (upload sessions, chunked PATCH, PUT ?digest=, cross-repository mounts,
// manifest PUT, DELETE), tags/list and referrers, and any other path on the registry's host. The
// request body is streamed upstream as it arrives and the response streamed back as it comes, so
// memory stays bounded whatever the layer's size; Location and WWW-Authenticate are rewritten so
// the client comes back through the appliance (forwarding.hpp). A manifest whose push upstream
// accepted, and whose bytes hash to the digest upstream named, enters the cache, so a pull right
// after a push is served locally.
#pragma once

#include "core/asio.hpp"

#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include "proxy/api/access_check.hpp"
#include "proxy/api/api.hpp"
#include "proxy/api/check_request.hpp"
#include "proxy/api/http_session.hpp"
#include "proxy/manifest_cache.hpp"

namespace pullthrough::proxy {

class ForwardHandler {
 public:
  // All must outlive the handler.
  ForwardHandler(AccessBooks& books, ManifestCache& manifests, RegistryCounters& counters,
                 spdlog::logger& log)
      : books_(books), manifests_(manifests), counters_(counters), log_(log) {}

  // `kind` is push, listing or passthrough. Reads the request body through `parser`.
  asio::awaitable<bool> serve(HttpSession& session, HttpSession::Parser& parser,
                              const ApiRequest& request, RequestKind kind);

 private:
  asio::awaitable<bool> push_manifest(HttpSession& session, HttpSession::Parser& parser,
                                      const ApiRequest& request, ForwardRequest forward);
  asio::awaitable<bool> relay(HttpSession& session, const ApiRequest& request,
                              UpstreamResult result);

  AccessBooks& books_;
  ManifestCache& manifests_;
  RegistryCounters& counters_;
  spdlog::logger& log_;
};

// A body held in memory, read as a BodySource.
class StringBody final : public BodySource {
 public:
  explicit StringBody(std::string bytes) : bytes_(std::move(bytes)) {}
  asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) override;
  std::optional<std::uint64_t> content_length() const override { return bytes_.size(); }

 private:
  std::string bytes_;
  std::size_t offset_ = 0;
};

}  // namespace pullthrough::proxy
