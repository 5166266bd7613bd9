#include "proxy/direct_tls_writer.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <cerrno>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace pullthrough::proxy {
namespace {

// One wait for the socket to take bytes, shared with that wait's timeout handler (which runs on
// the socket's strand, as the writing coroutine does, and may run after the wait has ended).
struct Stall {
  bool over = false;
  bool timed_out = false;
};

}  // namespace

DirectTlsWriter::DirectTlsWriter(DirectTlsStream& stream, std::uint64_t body_bytes)
    : stream_(stream) {
  SSL* ssl = stream_.native_handle();
  auto fd = beast::get_lowest_layer(stream_).socket().native_handle();
  // Asio's engine gives the SSL one BIO for both directions, holding a reference per slot, so
  // replacing the write slot leaves the read side (and any bytes buffered there) untouched.
  if (SSL_get_rbio(ssl) != SSL_get_wbio(ssl)) return;
  BIO* socket = BIO_new_socket(static_cast<int>(fd), BIO_NOCLOSE);
  if (socket == nullptr) return;
  // The body's records: its bytes, and 22 of framing per record of up to 16 KiB (counted as
  // 1 in 512, more than enough).
  const std::uint64_t framed = body_bytes + body_bytes / 512 + 64;
  const auto gather_bytes =
      static_cast<long>(std::clamp<std::uint64_t>(framed, 4096, std::uint64_t{kGatherBytes}));
  BIO* gather = BIO_new(BIO_f_buffer());
  if (gather == nullptr || BIO_set_write_buffer_size(gather, gather_bytes) != 1) {
    BIO_free(gather);
    BIO_free(socket);
    return;
  }
  direct_ = BIO_push(gather, socket);
  SSL_set0_wbio(ssl, direct_);  // drops the write slot's reference to Asio's BIO
}

DirectTlsWriter::~DirectTlsWriter() {
  *alive_ = false;
  if (direct_ == nullptr) return;
  SSL* ssl = stream_.native_handle();
  BIO* engine = SSL_get_rbio(ssl);
  BIO_up_ref(engine);
  SSL_set0_wbio(ssl, engine);  // frees the socket BIO, not the socket
}

asio::awaitable<error_code> DirectTlsWriter::write(std::span<const std::uint8_t> bytes,
                                                   std::chrono::milliseconds timeout, bool flush) {
  SSL* ssl = stream_.native_handle();
  auto& socket = beast::get_lowest_layer(stream_).socket();
  // The whole call has one deadline, like an Asio write under a stream timeout: a client must
  // take each chunk within `timeout`, so one that reads a trickle cannot hold the connection.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    ERR_clear_error();
    errno = 0;
    if (!bytes.empty()) {
      // The gather buffer passes a record on to the socket when it cannot take it whole; when
      // the socket cannot take that, OpenSSL keeps the record and asks to be called again.
      std::size_t written = 0;
      if (SSL_write_ex(ssl, bytes.data(), bytes.size(), &written) == 1) {
        bytes = bytes.subspan(written);
        continue;
      }
      int reason = SSL_get_error(ssl, 0);
      if (reason != SSL_ERROR_WANT_WRITE) {
        if (reason == SSL_ERROR_SYSCALL && errno != 0) {
          co_return error_code(errno, boost::system::system_category());
        }
        co_return asio::error::connection_reset;
      }
    } else if (!flush || BIO_flush(direct_) == 1) {
      co_return error_code{};
    } else if (!BIO_should_retry(direct_)) {
      co_return errno != 0 ? error_code(errno, boost::system::system_category())
                           : error_code(asio::error::connection_reset);
    }
    // The socket buffer is full. The timer is armed only here, for each wait and always with the
    // call's deadline, so no path can leave a wait without one (re-arming a timer cancels its
    // pending wait). A handler already queued when the socket became writable finds its wait over.
    if (std::chrono::steady_clock::now() >= deadline) co_return beast::error::timeout;
    auto stall = std::make_shared<Stall>();
    timer.expires_at(deadline);
    timer.async_wait([alive = std::weak_ptr<bool>(alive_), &socket, stall](error_code ec) {
      auto still = alive.lock();
      if (ec || stall->over || !still || !*still) return;
      stall->timed_out = true;
      error_code ignored;
      socket.cancel(ignored);
    });
    error_code ec;
    co_await socket.async_wait(asio::ip::tcp::socket::wait_write,
                               asio::redirect_error(asio::use_awaitable, ec));
    stall->over = true;
    timer.cancel();
    if (stall->timed_out) co_return beast::error::timeout;
    if (ec) co_return ec;
  }
}

}  // namespace pullthrough::proxy
