// Writing a message body with OpenSSL straight to the socket: a blob's response to a client, an
// upload's body to upstream. Asio's TLS stream has OpenSSL encrypt into a memory BIO pair and then
// copies the records out into a buffer of its own before writing them: two copies of every byte
// that nginx (OpenSSL on the socket) does not make. For blob bodies, hundreds of MiB per pull or
// push, those copies are a measurable share of the server's CPU, so while the body is written the
// SSL object's write BIO is a socket BIO, and it is put back after.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <memory>
#include <span>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/system/error_code.hpp>

namespace pullthrough::proxy {

// A TLS connection as the front door and the upstream connector make it.
using DirectTlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

class DirectTlsWriter {
 public:
  // Swaps the write BIO. Only between messages: no Asio operation on `stream` may be in progress,
  // and the last Asio write must have completed (so nothing is left in Asio's buffers). The
  // coroutines using it must run on the stream's executor (a strand).
  explicit DirectTlsWriter(DirectTlsStream& stream);
  // Puts Asio's BIO back; the stream can then be used by Asio again.
  ~DirectTlsWriter();
  DirectTlsWriter(const DirectTlsWriter&) = delete;
  DirectTlsWriter& operator=(const DirectTlsWriter&) = delete;

  // False when the BIO could not be swapped: use the stream as usual.
  bool usable() const { return direct_ != nullptr; }

  // Writes all of `bytes` as TLS records; fails with beast::error::timeout when the peer has not
  // taken all of them within `timeout`, or with the transport's or OpenSSL's error.
  boost::asio::awaitable<boost::system::error_code> write(std::span<const std::uint8_t> bytes,
                                                          std::chrono::milliseconds timeout);

 private:
  DirectTlsStream& stream_;
  BIO* direct_ = nullptr;
  // Tells a timeout handler still queued after the writer is gone to leave the socket alone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace pullthrough::proxy
