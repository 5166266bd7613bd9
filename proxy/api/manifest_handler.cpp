#include "proxy/api/manifest_handler.hpp"

namespace pullthrough::proxy {

std::string joined_accept(const http::request_header<>& header) {
  std::string out;
  auto [first, last] = header.equal_range(http::field::accept);
  for (auto it = first; it != last; ++it) {
    if (!out.empty()) out.append(", ");
    out.append(it->value());
  }
  return out;
}

asio::awaitable<bool> send_client_refused(HttpSession& session, const ApiRequest& request,
                                          AccessCheck& access, std::string message) {
  access.revoke(request);
  Clearance refused;
  refused.status = 401;
  refused.error = OciError::unauthorized;
  refused.message = std::move(message);
  refused.challenges = access.known_challenges(request);
  co_return co_await AccessCheck::send(session, refused);
}

asio::awaitable<bool> ManifestHandler::serve(HttpSession& session, const ApiRequest& request) {
  ManifestRequest wanted;
  wanted.registry = &request.registry;
  wanted.upstream = &request.upstream;
  wanted.repository = request.route.repository;
  wanted.reference = request.route.reference;
  wanted.by_digest = request.route.reference_is_digest;
  wanted.accept = joined_accept(request.header);
  wanted.want_body = !request.head;
  wanted.credentials = request.credentials;
  ManifestAnswer answer = co_await manifests_.get(std::move(wanted));
  if (!answer.found) {
    if (answer.error == OciError::unauthorized &&
        request.credentials.auth == UpstreamAuth::client) {
      co_return co_await send_client_refused(session, request, access_, answer.message);
    }
    if (answer.error == OciError::unavailable) counters_.upstream_unavailable.add();
    co_return co_await session.send_error(answer.error, answer.message, 0, answer.retry_after);
  }
  auto fields = [&](auto& response) {
    response.set(http::field::content_type, answer.media_type);
    response.set("Docker-Content-Digest", answer.digest);
    response.set(http::field::etag, "\"" + answer.digest + "\"");
    response.set(kCacheHeader, answer.stale ? "stale" : "ok");
    response.content_length(answer.size);
  };
  if (request.head) {
    auto header = session.header_response(http::status::ok);
    fields(header);
    co_return co_await session.write_header(header);
  }
  auto response = session.response(http::status::ok);
  response.body() = std::move(answer.body);
  fields(response);
  co_return co_await session.write(response);
}

}  // namespace pullthrough::proxy
