#include "proxy/upstream/request_relay.hpp"

#include "core/asio.hpp"

#include <optional>
#include <span>
#include <vector>

#include <boost/beast/http/error.hpp>

namespace pullthrough::proxy {

boost::asio::awaitable<RelayResult> relay_request(Connection& connection,
                                                  UpstreamStreamedRequest& request,
                                                  BodySource& body,
                                                  std::chrono::milliseconds write_timeout) {
  RelayResult result;
  const std::optional<std::uint64_t> announced = body.content_length();
  std::vector<std::uint8_t> buffer(kRelayPieceBytes);
  request.body().data = nullptr;
  request.body().size = 0;
  request.body().more = true;
  UpstreamRequestSerializer serializer(request);
  auto fail_body = [&result](error_code ec) {
    result.outcome = RelayResult::Outcome::body_failed;
    result.error = ec;
    return result;
  };

  // The header goes out with the first piece: one write for a small body.
  for (;;) {
    BodyRead read = co_await body.read_some(std::span<std::uint8_t>(buffer));
    if (read.error) co_return fail_body(read.error);
    if (read.bytes > buffer.size()) co_return fail_body(asio::error::invalid_argument);
    if (read.bytes == 0) {
      // Content-Length promised more: upstream must not take what came as the whole body.
      if (announced && result.body_bytes != *announced) {
        co_return fail_body(http::error::partial_message);
      }
      request.body().data = nullptr;
      request.body().size = 0;
      request.body().more = false;
    } else {
      if (announced && read.bytes > *announced - result.body_bytes) {
        co_return fail_body(http::error::body_limit);
      }
      request.body().data = buffer.data();
      request.body().size = read.bytes;
      request.body().more = true;
    }

    error_code ec;
    co_await connection.write_part(serializer, write_timeout, ec);
    // The piece is written and the serializer waits for the next: Beast's way of saying so.
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      result.outcome = RelayResult::Outcome::write_failed;
      result.error = ec;
      co_return result;
    }
    result.body_bytes += read.bytes;
    if (serializer.is_done()) co_return result;
  }
}

}  // namespace pullthrough::proxy
