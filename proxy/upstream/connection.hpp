// One connection to an upstream origin, plain or TLS, used by one request at a time; made by the
// Connector, kept between requests by the ConnectionPool, driven by the UpstreamClient.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/system/error_code.hpp>

#include "core/clock.hpp"
#include "proxy/direct_tls_writer.hpp"
#include "proxy/upstream/url.hpp"

namespace pullthrough::proxy {

using UpstreamParser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;
using UpstreamRequestMessage = boost::beast::http::request<boost::beast::http::empty_body>;
// A request whose body is relayed piece by piece (forward()): the caller points the body at each
// piece in turn and the serializer frames it (Content-Length, or chunked encoding).
using UpstreamStreamedRequest = boost::beast::http::request<boost::beast::http::buffer_body>;
using UpstreamRequestSerializer =
    boost::beast::http::request_serializer<boost::beast::http::buffer_body>;

// Beast's stream timeouts are only sound when the stream's operations and its timer handlers run
// on one strand, and the awaiting coroutine may run on a multi-threaded io_context. So every
// operation runs as a coroutine of its own on the connection's strand, and its caller awaits that.
class Connection {
 public:
  // Beast sizes each socket read by the buffer's free capacity (at least 512 bytes). A buffer that
  // starts empty and is drained by every parse never grows, so a blob would arrive 512 bytes per
  // read; reserving a TLS record's worth and more keeps reads large.
  static constexpr std::size_t kReadBufferBytes = std::size_t{64} * 1024;

  explicit Connection(Origin origin) : origin_(std::move(origin)), key_(origin_.key()) {
    buffer_.reserve(kReadBufferBytes);
  }
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Each fails with beast::error::timeout when not done within `timeout`.
  virtual boost::asio::awaitable<void> write(UpstreamRequestMessage& request,
                                             std::chrono::milliseconds timeout,
                                             boost::system::error_code& ec) = 0;
  // Writes what the serializer has: the header first, then the body piece its request points
  // at. Ends with http::error::need_buffer once that piece is written and the body has more.
  virtual boost::asio::awaitable<void> write_part(UpstreamRequestSerializer& serializer,
                                                  std::chrono::milliseconds timeout,
                                                  boost::system::error_code& ec) = 0;
  // Writes `bytes` as they are, after a write_part() that left the serializer wanting more: the
  // rest of a body, framed by the caller. Over TLS, OpenSSL writes the records to the socket
  // itself (DirectTlsWriter), without Asio's two copies and one operation per record.
  virtual boost::asio::awaitable<void> write_raw(std::span<const std::uint8_t> bytes,
                                                 std::chrono::milliseconds timeout,
                                                 boost::system::error_code& ec) = 0;
  virtual boost::asio::awaitable<void> read_header(UpstreamParser& parser,
                                                   std::chrono::milliseconds timeout,
                                                   boost::system::error_code& ec) = 0;
  virtual boost::asio::awaitable<void> read_some(UpstreamParser& parser,
                                                 std::chrono::milliseconds timeout,
                                                 boost::system::error_code& ec) = 0;
  // Reads body bytes until the parser's body buffer is full or the message is complete: as many
  // socket reads as that takes, with one hand-over to the strand and one deadline (`timeout`
  // for the whole fill) instead of one each per read. Ends with http::error::need_buffer when
  // the buffer is full and the body has more.
  virtual boost::asio::awaitable<void> read_body(UpstreamParser& parser,
                                                 std::chrono::milliseconds timeout,
                                                 boost::system::error_code& ec) = 0;

  // For an idle connection: true when the peer has closed it, or sent bytes nobody asked for (a
  // TLS close_notify, an unsolicited answer), so that a request on it would fail or be misread.
  // Looks without reading or waiting; safe from any thread while no operation is in flight.
  virtual bool peer_closed() = 0;

  const Origin& origin() const { return origin_; }
  const std::string& key() const { return key_; }
  // Holds what was read past the parser's position; empty between responses, since requests are
  // not pipelined.
  std::size_t buffered() const { return buffer_.size(); }
  core::Clock::TimePoint idle_since{};

 protected:
  boost::beast::flat_buffer buffer_;

 private:
  Origin origin_;
  std::string key_;
};

using UpstreamTlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// True when the socket has bytes to read, has reached end of stream, or has failed: a peek that
// neither consumes nor blocks.
bool socket_readable_or_closed(int fd);

// A Connection over a beast::tcp_stream or an UpstreamTlsStream on its own strand.
template <typename Stream>
class StreamConnection final : public Connection {
 public:
  StreamConnection(Origin origin, Stream stream)
      : Connection(std::move(origin)), stream_(std::move(stream)) {}

  boost::asio::awaitable<void> write(UpstreamRequestMessage& request,
                                     std::chrono::milliseconds timeout,
                                     boost::system::error_code& ec) override {
    co_await boost::asio::co_spawn(stream_.get_executor(), write_on_strand(request, timeout, ec),
                                   boost::asio::use_awaitable);
  }
  boost::asio::awaitable<void> write_part(UpstreamRequestSerializer& serializer,
                                          std::chrono::milliseconds timeout,
                                          boost::system::error_code& ec) override {
    co_await boost::asio::co_spawn(stream_.get_executor(),
                                   write_part_on_strand(serializer, timeout, ec),
                                   boost::asio::use_awaitable);
  }
  boost::asio::awaitable<void> write_raw(std::span<const std::uint8_t> bytes,
                                         std::chrono::milliseconds timeout,
                                         boost::system::error_code& ec) override {
    co_await boost::asio::co_spawn(stream_.get_executor(), write_raw_on_strand(bytes, timeout, ec),
                                   boost::asio::use_awaitable);
  }
  boost::asio::awaitable<void> read_header(UpstreamParser& parser,
                                           std::chrono::milliseconds timeout,
                                           boost::system::error_code& ec) override {
    co_await boost::asio::co_spawn(stream_.get_executor(),
                                   read_on_strand(parser, true, timeout, ec),
                                   boost::asio::use_awaitable);
  }
  boost::asio::awaitable<void> read_some(UpstreamParser& parser, std::chrono::milliseconds timeout,
                                         boost::system::error_code& ec) override {
    co_await boost::asio::co_spawn(stream_.get_executor(),
                                   read_on_strand(parser, false, timeout, ec),
                                   boost::asio::use_awaitable);
  }
  boost::asio::awaitable<void> read_body(UpstreamParser& parser, std::chrono::milliseconds timeout,
                                         boost::system::error_code& ec) override {
    co_await boost::asio::co_spawn(stream_.get_executor(), read_body_on_strand(parser, timeout, ec),
                                   boost::asio::use_awaitable);
  }
  bool peer_closed() override {
    auto& socket = boost::beast::get_lowest_layer(stream_).socket();
    return !socket.is_open() || socket_readable_or_closed(socket.native_handle());
  }

 private:
  boost::asio::awaitable<void> write_on_strand(UpstreamRequestMessage& request,
                                               std::chrono::milliseconds timeout,
                                               boost::system::error_code& ec) {
    boost::beast::get_lowest_layer(stream_).expires_after(timeout);
    co_await boost::beast::http::async_write(
        stream_, request, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    boost::beast::get_lowest_layer(stream_).expires_never();
  }
  boost::asio::awaitable<void> write_part_on_strand(UpstreamRequestSerializer& serializer,
                                                    std::chrono::milliseconds timeout,
                                                    boost::system::error_code& ec) {
    boost::beast::get_lowest_layer(stream_).expires_after(timeout);
    co_await boost::beast::http::async_write(
        stream_, serializer, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    boost::beast::get_lowest_layer(stream_).expires_never();
  }
  boost::asio::awaitable<void> write_raw_on_strand(std::span<const std::uint8_t> bytes,
                                                   std::chrono::milliseconds timeout,
                                                   boost::system::error_code& ec) {
    if constexpr (std::is_same_v<Stream, UpstreamTlsStream>) {
      DirectTlsWriter direct(stream_);
      if (direct.usable()) {
        ec = co_await direct.write(bytes, timeout);
        co_return;
      }
    }
    boost::beast::get_lowest_layer(stream_).expires_after(timeout);
    co_await boost::asio::async_write(stream_, boost::asio::buffer(bytes.data(), bytes.size()),
                                      boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    boost::beast::get_lowest_layer(stream_).expires_never();
  }
  boost::asio::awaitable<void> read_on_strand(UpstreamParser& parser, bool header,
                                              std::chrono::milliseconds timeout,
                                              boost::system::error_code& ec) {
    boost::beast::get_lowest_layer(stream_).expires_after(timeout);
    if (header) {
      co_await boost::beast::http::async_read_header(
          stream_, buffer_, parser, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    } else {
      co_await boost::beast::http::async_read_some(
          stream_, buffer_, parser, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    boost::beast::get_lowest_layer(stream_).expires_never();
  }
  boost::asio::awaitable<void> read_body_on_strand(UpstreamParser& parser,
                                                   std::chrono::milliseconds timeout,
                                                   boost::system::error_code& ec) {
    boost::beast::get_lowest_layer(stream_).expires_after(timeout);
    while (!ec && !parser.is_done() && parser.get().body().size > 0) {
      co_await boost::beast::http::async_read_some(
          stream_, buffer_, parser, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    if (!ec && !parser.is_done()) ec = boost::beast::http::error::need_buffer;
    boost::beast::get_lowest_layer(stream_).expires_never();
  }

  Stream stream_;
};

}  // namespace pullthrough::proxy
