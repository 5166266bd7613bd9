// Writing a message body with OpenSSL straight to the socket: a blob's response to a client, an
// upload's body to upstream. Asio's TLS stream has OpenSSL encrypt into a memory BIO pair and then
// copies the records out into a buffer of its own before writing them: two copies of every byte
// that nginx (OpenSSL on the socket) does not make. For blob bodies, hundreds of MiB per pull or
// push, those copies are a measurable share of the server's CPU, so while the body is written the
// SSL object's write BIO is a socket BIO, and it is put back after. Between them sits a buffer
// that gathers records into writes of up to kGatherBytes: one write of 16 records instead of 16
// writes of one costs the kernel one pass through TCP and loopback instead of 16, and wakes a
// reader that has caught up once instead of up to 16 times (an IPI each when it sleeps on another
// CPU). It costs one copy of the ciphertext, from OpenSSL's record buffer into the gather buffer,
// while both are in cache.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
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
  // The most bytes of records one write to the socket carries. Not more: each writer holds a
  // buffer this size while it sends, and 50 clients pulling at once must stay within the
  // appliance's memory bound (bench-proxy part d).
  static constexpr std::size_t kGatherBytes = std::size_t{256} * 1024;

  // Swaps the write BIO. Only between messages: no Asio operation on `stream` may be in progress,
  // and the last Asio write must have completed (so nothing is left in Asio's buffers). The
  // coroutines using it must run on the stream's executor (a strand). `body_bytes`, what the
  // writer will be given in all, sizes the gather buffer: a small body needs no more room than
  // its own records take, a large one kGatherBytes.
  explicit DirectTlsWriter(DirectTlsStream& stream, std::uint64_t body_bytes = kGatherBytes);
  // Puts Asio's BIO back; the stream can then be used by Asio again.
  ~DirectTlsWriter();
  DirectTlsWriter(const DirectTlsWriter&) = delete;
  DirectTlsWriter& operator=(const DirectTlsWriter&) = delete;

  // False when the BIO could not be swapped: use the stream as usual.
  bool usable() const { return direct_ != nullptr; }

  // Encrypts all of `bytes` as TLS records. With `flush`, every record, including those gathered
  // by earlier calls, is on the socket when the call returns; without, a buffer's worth of them
  // may wait in the gather buffer for the next call (the caller has more bytes at hand). Fails
  // with beast::error::timeout when the peer has not taken what had to go within `timeout`, or
  // with the transport's or OpenSSL's error. The last call before the writer goes must flush:
  // records still gathered then are lost, and the stream with them.
  boost::asio::awaitable<boost::system::error_code> write(std::span<const std::uint8_t> bytes,
                                                          std::chrono::milliseconds timeout,
                                                          bool flush = true);

 private:
  DirectTlsStream& stream_;
  BIO* direct_ = nullptr;
  // Tells a timeout handler still queued after the writer is gone to leave the socket alone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace pullthrough::proxy
