#include "proxy/upstream/request_relay.hpp"

#include "core/asio.hpp"

#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <boost/beast/http/error.hpp>

namespace pullthrough::proxy {

namespace {

// Room before a piece for its chunk-size line (16 hex digits and CRLF at most) and after it for
// the chunk's CRLF, so that a chunk goes out in one write without a copy.
constexpr std::size_t kChunkHeadroom = 18;
constexpr std::size_t kChunkTailroom = 2;
constexpr std::string_view kLastChunk = "0\r\n\r\n";

// Frames `piece` (which has the room above around it) as one chunk of a chunked body.
std::span<const std::uint8_t> as_chunk(std::span<std::uint8_t> piece) {
  char line[kChunkHeadroom];
  const int n = std::snprintf(line, sizeof line, "%zx\r\n", piece.size());
  std::uint8_t* begin = piece.data() - n;
  std::memcpy(begin, line, static_cast<std::size_t>(n));
  piece.data()[piece.size()] = '\r';
  piece.data()[piece.size() + 1] = '\n';
  return {begin, static_cast<std::size_t>(n) + piece.size() + kChunkTailroom};
}

}  // namespace

boost::asio::awaitable<RelayResult> relay_request(Connection& connection,
                                                  UpstreamStreamedRequest& request,
                                                  BodySource& body,
                                                  std::chrono::milliseconds write_timeout) {
  RelayResult result;
  const std::optional<std::uint64_t> announced = body.content_length();
  const bool chunked = request.chunked();
  std::vector<std::uint8_t> buffer(kChunkHeadroom + kRelayPieceBytes + kChunkTailroom);
  const std::span<std::uint8_t> room(buffer.data() + kChunkHeadroom, kRelayPieceBytes);
  request.body().data = nullptr;
  request.body().size = 0;
  request.body().more = true;
  UpstreamRequestSerializer serializer(request);
  auto fail_body = [&result](error_code ec) {
    result.outcome = RelayResult::Outcome::body_failed;
    result.error = ec;
    return result;
  };
  auto fail_write = [&result](error_code ec) {
    result.outcome = RelayResult::Outcome::write_failed;
    result.error = ec;
    return result;
  };

  // The header goes out through Beast with the first piece (one write for a small body); the
  // pieces after it are framed here and written as they are.
  bool header_sent = false;
  for (;;) {
    BodyRead read = co_await body.read_some(room);
    if (read.error) co_return fail_body(read.error);
    if (read.bytes > room.size()) co_return fail_body(asio::error::invalid_argument);
    if (read.bytes == 0) {
      // Content-Length promised more: upstream must not take what came as the whole body.
      if (announced && result.body_bytes != *announced) {
        co_return fail_body(http::error::partial_message);
      }
    } else if (announced && read.bytes > *announced - result.body_bytes) {
      co_return fail_body(http::error::body_limit);
    }

    error_code ec;
    if (!header_sent) {
      request.body().data = read.bytes > 0 ? room.data() : nullptr;
      request.body().size = read.bytes;
      request.body().more = read.bytes > 0;
      co_await connection.write_part(serializer, write_timeout, ec);
      // The piece is written and the serializer waits for the next: Beast's way of saying so.
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return fail_write(ec);
      header_sent = true;
      result.body_bytes += read.bytes;
      if (serializer.is_done()) co_return result;
      continue;
    }
    if (read.bytes == 0) {
      if (chunked) {
        const std::span<const std::uint8_t> last(
            reinterpret_cast<const std::uint8_t*>(kLastChunk.data()), kLastChunk.size());
        co_await connection.write_raw(last, write_timeout, ec);
        if (ec) co_return fail_write(ec);
      }
      co_return result;
    }
    // Named, not a conditional expression inside the co_await: g++ 12 mishandles such
    // temporaries in a coroutine frame.
    std::span<const std::uint8_t> bytes = room.first(read.bytes);
    if (chunked) bytes = as_chunk(room.first(read.bytes));
    co_await connection.write_raw(bytes, write_timeout, ec);
    if (ec) co_return fail_write(ec);
    result.body_bytes += read.bytes;
  }
}

}  // namespace pullthrough::proxy
