#include "proxy/api/forward_handler.hpp"

#include <algorithm>
#include <cstring>

#include "proxy/api/forwarding.hpp"
#include "proxy/digester.hpp"
#include "proxy/media_types.hpp"

namespace pullthrough::proxy {
namespace {

Origin origin_of(const config::RegistryConfig& registry) {
  return Origin{registry.upstream.scheme, registry.upstream.host, registry.upstream.port};
}

// Counts the bytes of a push as they go upstream.
class CountedBody final : public BodySource {
 public:
  CountedBody(BodySource& inner, core::Counter& bytes) : inner_(inner), bytes_(bytes) {}
  asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) override {
    BodyRead read = co_await inner_.read_some(out);
    bytes_.add(read.bytes);
    co_return read;
  }
  std::optional<std::uint64_t> content_length() const override { return inner_.content_length(); }

 private:
  BodySource& inner_;
  core::Counter& bytes_;
};

std::string field(const http::response_header<>& header, std::string_view name) {
  auto found = header.find(name);
  return found == header.end() ? std::string() : std::string(found->value());
}

}  // namespace

asio::awaitable<BodyRead> StringBody::read_some(std::span<std::uint8_t> out) {
  std::size_t n = std::min(out.size(), bytes_.size() - offset_);
  std::memcpy(out.data(), bytes_.data() + offset_, n);
  offset_ += n;
  co_return BodyRead{n, {}};
}

asio::awaitable<bool> ForwardHandler::serve(HttpSession& session, HttpSession::Parser& parser,
                                            const ApiRequest& request, RequestKind kind) {
  (kind == RequestKind::push ? counters_.push_requests : counters_.passthrough_requests).add();
  ForwardRequest forward;
  forward.method = request.header.method();
  forward.target = std::string(request.header.target());
  forward.fields = forwarded_request_fields(request.header);
  if (TokenBook::is_offline(request.authorization)) {
    // The appliance's own token means nothing upstream: what it can stand for is decided here,
    // and a request passed through gets upstream's answer for no credentials.
    forward.fields.erase(http::field::authorization);
  }
  if (kind == RequestKind::push && request.route.endpoint == ApiEndpoint::manifest &&
      forward.method == http::verb::put) {
    co_return co_await push_manifest(session, parser, request, std::move(forward));
  }
  // The header is the parser's: everything needed of it is taken above.
  std::unique_ptr<BodySource> body = session.request_body(parser);
  std::unique_ptr<CountedBody> counted;
  if (body) {
    counted = std::make_unique<CountedBody>(*body, counters_.push_bytes);
    forward.body = counted.get();
  }
  UpstreamResult result = co_await request.upstream.forward(std::move(forward));
  co_return co_await relay(session, request, std::move(result));
}

asio::awaitable<bool> ForwardHandler::relay(HttpSession& session, const ApiRequest& request,
                                            UpstreamResult result) {
  const std::string& host = request.registry.host;
  if (!result.response) {
    if (result.failure == UpstreamFailure::request_body) {
      // The client's own body broke off: there is no one to answer.
      log_.debug("{}: request body broke off: {}", request.client_host, result.error);
      co_return false;
    }
    counters_.upstream_unavailable.add();
    session.close_after_response();
    co_return co_await session.send_error(
        OciError::unavailable,
        "upstream " + host + " (" + request.registry.upstream.to_string() +
            ") cannot be reached: " + std::string(to_string(result.failure)) + ": " + result.error);
  }
  UpstreamResponse& response = *result.response;
  RelayedHeader relayed =
      relayed_response_header(response.header, origin_of(request.registry), request.client_host);
  if (relayed.realm) books_.realms.record_realm(host, *relayed.realm);
  co_return co_await session.relay(std::move(relayed.header), response.body.get());
}

asio::awaitable<bool> ForwardHandler::push_manifest(HttpSession& session,
                                                    HttpSession::Parser& parser,
                                                    const ApiRequest& request,
                                                    ForwardRequest forward) {
  // Manifests are small (the distribution registry's limit is 4 MiB): held whole, so that what
  // upstream accepted can be verified and cached.
  const std::string media_type =
      media_type_of(std::string(request.header[http::field::content_type]));
  const Route route = request.route;
  std::unique_ptr<BodySource> body = session.request_body(parser);
  std::string bytes;
  if (body) {
    if (auto length = body->content_length(); length && *length > kMaxManifestBytes) {
      session.close_after_response();
      co_return co_await session.send_error(
          OciError::manifest_invalid,
          "manifest larger than " + std::to_string(kMaxManifestBytes) + " bytes", 413);
    }
    WholeBody whole = co_await read_whole_body(*body, kMaxManifestBytes);
    if (whole.error == http::error::body_limit) {
      session.close_after_response();
      co_return co_await session.send_error(
          OciError::manifest_invalid,
          "manifest larger than " + std::to_string(kMaxManifestBytes) + " bytes", 413);
    }
    if (whole.error) co_return false;  // the client's body broke off
    bytes = std::move(whole.bytes);
  }
  counters_.push_bytes.add(bytes.size());
  StringBody held(bytes);
  forward.body = &held;
  UpstreamResult result = co_await request.upstream.forward(std::move(forward));
  if (result.response && result.response->header.result_int() == 201 && !media_type.empty()) {
    std::string named = field(result.response->header, "Docker-Content-Digest");
    std::string algorithm = route.reference_is_digest
                                ? std::string(digest_algorithm(route.reference))
                            : !named.empty() ? std::string(digest_algorithm(named))
                                             : std::string("sha256");
    if (algorithm == "sha256" || algorithm == "sha512") {
      Digester digester(algorithm);
      digester.update(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
      std::string digest = digester.finish();
      bool matches = (named.empty() || named == digest) &&
                     (!route.reference_is_digest || route.reference == digest);
      if (matches) {
        // Named, not a conditional expression inside the co_await: g++ 12 mishandles such
        // temporaries in a coroutine frame.
        std::string tag;
        if (!route.reference_is_digest) tag = route.reference;
        co_await manifests_.put_pushed(request.registry, route.repository, tag, digest, media_type,
                                       std::move(bytes));
      } else {
        log_.warn("{}/{}: pushed manifest hashes to {}, upstream named {}: not cached",
                  request.registry.host, route.repository, digest, named);
      }
    }
  }
  co_return co_await relay(session, request, std::move(result));
}

}  // namespace pullthrough::proxy
