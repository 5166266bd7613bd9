#include "proxy/api/listing_handler.hpp"

#include <array>
#include <string>
#include <string_view>

#include "proxy/api/manifest_handler.hpp"

namespace pullthrough::proxy {

asio::awaitable<bool> ListingHandler::serve(HttpSession& session, const ApiRequest& request) {
  counters_.passthrough_requests.add();
  UpstreamRequest forward;
  forward.method = request.head ? http::verb::head : http::verb::get;
  // The path passed parse_route; the query goes upstream as sent.
  forward.target = std::string(request.header.target());
  forward.repository = request.route.repository;
  forward.accept = joined_accept(request.header);
  UpstreamResult result = co_await request.upstream.send(std::move(forward));
  if (!result.response) {
    counters_.upstream_unavailable.add();
    co_return co_await session.send_error(OciError::unavailable,
                                          "upstream cannot be reached: " + result.error);
  }
  auto& upstream_response = *result.response;
  auto response = session.response(upstream_response.header.result());
  for (std::string_view name : {"Content-Type", "Link", "OCI-Filters-Applied"}) {
    auto found = upstream_response.header.find(name);
    if (found != upstream_response.header.end() && !found->value().empty())
      response.set(name, found->value());
  }
  if (upstream_response.body && !request.head) {
    std::array<std::uint8_t, std::size_t{16} * 1024> chunk{};
    for (;;) {
      BodyRead read = co_await upstream_response.body->read_some(chunk);
      if (read.error) {
        co_return co_await session.send_error(
            OciError::upstream_error, "upstream response broke off: " + read.error.message());
      }
      if (read.bytes == 0) break;
      if (response.body().size() + read.bytes > max_bytes_) {
        co_return co_await session.send_error(OciError::upstream_error,
                                              "upstream response exceeds the size limit");
      }
      response.body().append(reinterpret_cast<const char*>(chunk.data()), read.bytes);
    }
  }
  response.prepare_payload();
  co_return co_await session.write(response);
}

}  // namespace pullthrough::proxy
