#include "proxy/api/http_session.hpp"

#include <limits>
#include <span>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <openssl/ssl.h>

#include "proxy/direct_tls_writer.hpp"

namespace pullthrough::proxy {
namespace {

constexpr std::string_view kApiVersion = "registry/2.0";
// What one read asks the TLS stream for while waiting for a request to start.
constexpr std::size_t kFirstReadBytes = 4096;

// Beast's parse errors: bytes that are not an HTTP request, or exceed a limit.
bool is_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

}  // namespace

HttpSession::HttpSession(TlsConnection connection, const HttpLimits& limits,
                         core::Counter& malformed, spdlog::logger& log)
    : connection_(std::move(connection)),
      limits_(limits),
      malformed_(malformed),
      log_(log),
      stream_(*connection_.stream),
      tcp_(beast::get_lowest_layer(stream_)) {}

asio::awaitable<void> HttpSession::run(const Handler& handle) {
  if (connection_.on_stopping) {
    // Runs on this connection's strand, as the session does; `alive` tells it whether the
    // session is still there.
    connection_.on_stopping([this, alive = std::weak_ptr<bool>(alive_)] {
      if (alive.lock() && idle_ && nothing_arriving()) tcp_.cancel();
    });
  }
  for (;;) {
    Parser parser;
    parser.header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    // Beast checks a Content-Length against the body limit (1 MiB by default for requests) as
    // soon as the header is parsed. An upload's size is not limited (each read of it has a
    // timeout instead), and what reads a body whole sets its own bound.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    tcp_.expires_after(limits_.request_timeout);
    idle_ = buffer_.size() == 0;
    if (idle_ && connection_.stopping() && nothing_arriving()) {
      co_await close_idle();
      co_return;
    }
    error_code ec = co_await skip_empty_lines();
    idle_ = false;
    if (!ec) {
      co_await http::async_read_header(stream_, buffer_, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) {
      co_await end_unread(ec);
      co_return;
    }
    const auto& request = parser.get();
    version_ = request.version();
    keep_alive_ = request.keep_alive() && !connection_.stopping();
    head_request_ = request.method() == http::verb::head;
    body_unread_ = (parser.content_length() && *parser.content_length() > 0) || parser.chunked();
    if (!co_await handle(*this, parser)) {
      // The response is incomplete, and a client that stopped reading would not take a
      // close_notify either.
      abort();
      co_return;
    }
    if (!keep_alive()) break;
  }
  co_await close_politely();
}

// --- responses ------------------------------------------------------------------------------

template <typename Body>
void HttpSession::common_fields(http::response<Body>& response) const {
  response.version(version_);
  response.keep_alive(keep_alive());
  response.set(http::field::server, "pullthrough");
  response.set("Docker-Distribution-API-Version", kApiVersion);
}

http::response<http::string_body> HttpSession::response(http::status status) const {
  http::response<http::string_body> response{status, version_};
  common_fields(response);
  return response;
}

http::response<http::empty_body> HttpSession::header_response(http::status status) const {
  http::response<http::empty_body> header{status, version_};
  common_fields(header);
  return header;
}

asio::awaitable<bool> HttpSession::write(http::response<http::string_body>& response) {
  // The header keeps the Content-Length a GET would get (RFC 9110 9.3.2).
  if (head_request_) response.body().clear();
  error_code ec;
  tcp_.expires_after(limits_.write_timeout);
  co_await http::async_write(stream_, response, asio::redirect_error(asio::use_awaitable, ec));
  // Beast reports end_of_stream after writing a message that closes the connection.
  co_return !ec || ec == http::error::end_of_stream;
}

asio::awaitable<bool> HttpSession::write_header(http::response<http::empty_body>& header) {
  http::response_serializer<http::empty_body> serializer(header);
  error_code ec;
  tcp_.expires_after(limits_.write_timeout);
  co_await http::async_write_header(stream_, serializer,
                                    asio::redirect_error(asio::use_awaitable, ec));
  co_return !ec;
}

asio::awaitable<bool> HttpSession::send_error(OciError error, std::string message, unsigned status,
                                              std::string retry_after) {
  auto answer = response(static_cast<http::status>(status != 0 ? status : status_of(error)));
  answer.set(http::field::content_type, "application/json");
  if (!retry_after.empty()) answer.set(http::field::retry_after, retry_after);
  answer.body() = error_body(error, message);
  answer.prepare_payload();
  co_return co_await write(answer);
}

asio::awaitable<StreamStatus> HttpSession::send_body(BlobReader& reader, std::uint64_t from,
                                                     std::uint64_t to, BlobFetch* fetch,
                                                     core::Counter& sent) {
  // Named: g++ 12 mishandles temporaries inside a co_await's call.
  const BodyWriter write = [&](const StreamSink& sink) -> asio::awaitable<StreamStatus> {
    co_return co_await stream_range(reader, from, to, chunk_, sink, fetch);
  };
  co_return co_await send_with_sink(to - from, sent, write);
}

asio::awaitable<StreamStatus> HttpSession::send_stored(BlobStream& stream, std::uint64_t length,
                                                       core::Counter& sent) {
  const BodyWriter write = [&](const StreamSink& sink) -> asio::awaitable<StreamStatus> {
    co_return co_await stream_stored(stream, length, chunk_, sink);
  };
  co_return co_await send_with_sink(length, sent, write);
}

asio::awaitable<StreamStatus> HttpSession::send_with_sink(std::uint64_t length, core::Counter& sent,
                                                          const BodyWriter& write) {
  if (chunk_.size() < limits_.chunk_bytes) chunk_.resize(limits_.chunk_bytes);
  // The header went out through Asio and that write completed, so the body may bypass it (with
  // its own write timeout: the stream's would not see these writes).
  tcp_.expires_never();
  DirectTlsWriter direct(stream_, length);
  StreamSink sink = [this, &sent, &direct](std::span<const std::uint8_t> bytes,
                                           bool more) -> asio::awaitable<bool> {
    error_code ec;
    if (direct.usable()) {
      // Counted as sent once encrypted: if a later write fails, the connection is cut, and the
      // count is ahead by at most the gather buffer.
      ec = co_await direct.write(bytes, limits_.write_timeout, !more);
    } else {
      tcp_.expires_after(limits_.write_timeout);
      co_await asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()),
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!ec) sent.add(bytes.size());
    co_return !ec;
  };
  co_return co_await write(sink);
}

// --- request bodies -------------------------------------------------------------------------

class HttpSession::ClientBody final : public BodySource {
 public:
  ClientBody(HttpSession& session, Parser& header_parser, bool expect_continue)
      : session_(session), parser_(std::move(header_parser)), expect_continue_(expect_continue) {
    // Uploads are GiBs: what bounds them is the per-read timeout, not a size. Not boost::none,
    // which Beast 1.74 compares as smaller than any Content-Length.
    parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  ~ClientBody() override {
    // An upload's read buffer is not kept for the requests that follow on the connection.
    session_.buffer_.shrink_to_fit();
  }

  asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) override {
    if (parser_.is_done()) co_return BodyRead{};
    if (error_) co_return BodyRead{0, error_};
    if (out.empty()) co_return BodyRead{0, asio::error::invalid_argument};
    if (expect_continue_) {
      // RFC 9110 10.1.1: the client may wait for this before it sends the body.
      expect_continue_ = false;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      error_code ec;
      session_.tcp_.expires_after(session_.limits_.write_timeout);
      co_await asio::async_write(session_.stream_, asio::buffer(kContinue),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return fail(ec);
    }
    // A read of the TLS stream yields one record (16 KiB at most): the piece is filled with the
    // records that have already arrived, so that an upload goes upstream in pieces of the size
    // asked for and not one write per record. Nothing waits for bytes that are not there yet.
    if (session_.buffer_.capacity() < out.size()) session_.buffer_.reserve(out.size());
    auto& body = parser_.get().body();
    std::size_t filled = 0;
    for (;;) {
      body.data = out.data() + filled;
      body.size = out.size() - filled;
      error_code ec;
      session_.tcp_.expires_after(session_.limits_.request_timeout);
      co_await http::async_read_some(session_.stream_, session_.buffer_, parser_,
                                     asio::redirect_error(asio::use_awaitable, ec));
      // The buffer is full: all this read can take, not an error.
      if (ec == http::error::need_buffer) ec = {};
      filled = out.size() - body.size;
      body.data = nullptr;
      body.size = 0;
      if (ec) {
        // The bytes that did arrive are handed out; the error comes with the next read.
        if (filled > 0) {
          error_ = ec;
          co_return BodyRead{filled, {}};
        }
        co_return fail(ec);
      }
      if (parser_.is_done()) {
        session_.body_unread_ = false;
        co_return BodyRead{filled, {}};
      }
      if (filled == out.size() || (filled > 0 && !more_arrived())) co_return BodyRead{filled, {}};
    }
  }

  std::optional<std::uint64_t> content_length() const override {
    auto length = parser_.content_length();
    return length ? std::optional<std::uint64_t>(*length) : std::nullopt;
  }

 private:
  // Bytes of the body are readable without waiting: decrypted and buffered, or still in the TLS
  // layer or the socket.
  bool more_arrived() {
    return session_.buffer_.size() > 0 || SSL_pending(session_.stream_.native_handle()) > 0 ||
           !session_.nothing_arriving();
  }

  BodyRead fail(const error_code& ec) {
    error_ = ec;
    return BodyRead{0, ec};
  }

  HttpSession& session_;
  http::request_parser<http::buffer_body> parser_;
  bool expect_continue_;
  error_code error_;
};

std::unique_ptr<BodySource> HttpSession::request_body(Parser& parser) {
  if (!body_unread_) return nullptr;
  const auto& header = parser.get();
  bool expect_continue =
      header.version() >= 11 && beast::iequals(header[http::field::expect], "100-continue");
  return std::make_unique<ClientBody>(*this, parser, expect_continue);
}

// --- relaying -------------------------------------------------------------------------------

asio::awaitable<bool> HttpSession::relay(http::response_header<> header, BodySource* body) {
  header.version(version_);
  const unsigned status = header.result_int();
  const bool bodiless = status / 100 == 1 || status == 204 || status == 304;
  error_code ec;
  if (head_request_ || bodiless || body == nullptr) {
    http::response<http::empty_body> message{std::move(header)};
    message.keep_alive(keep_alive());
    // A HEAD keeps the Content-Length a GET would get; an empty answer says it is empty.
    if (!head_request_ && !bodiless && !message.has_content_length()) message.content_length(0);
    co_return co_await write_header(message);
  }
  http::response<http::buffer_body> message{std::move(header)};
  message.keep_alive(keep_alive());
  if (!message.has_content_length()) message.chunked(true);
  message.body().data = nullptr;
  message.body().more = true;
  http::response_serializer<http::buffer_body> serializer(message);
  tcp_.expires_after(limits_.write_timeout);
  co_await http::async_write_header(stream_, serializer,
                                    asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return false;
  if (chunk_.size() < limits_.chunk_bytes) chunk_.resize(limits_.chunk_bytes);
  for (;;) {
    BodyRead read = co_await body->read_some(chunk_);
    if (read.error) {
      log_.debug("{}: upstream body broke off while relaying: {}", connection_.peer.to_string(),
                 read.error.message());
      co_return false;
    }
    message.body().data = read.bytes > 0 ? chunk_.data() : nullptr;
    message.body().size = read.bytes;
    message.body().more = read.bytes > 0;
    tcp_.expires_after(limits_.write_timeout);
    co_await http::async_write(stream_, serializer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec && ec != http::error::end_of_stream) co_return false;
    if (read.bytes == 0) co_return true;
  }
}

// --- closing --------------------------------------------------------------------------------

// RFC 9112 2.2: a server SHOULD ignore empty lines received before a request line. Reads until
// the buffer starts with some other byte; the empty lines count against the header limit.
asio::awaitable<error_code> HttpSession::skip_empty_lines() {
  std::size_t skipped = 0;
  for (;;) {
    auto bytes = buffer_.cdata();
    const auto* data = static_cast<const char*>(bytes.data());
    std::size_t n = 0;
    while (n < bytes.size() && (data[n] == '\r' || data[n] == '\n')) ++n;
    buffer_.consume(n);
    skipped += n;
    if (buffer_.size() != 0) co_return error_code{};
    if (skipped > limits_.max_header_bytes) co_return http::error::header_limit;
    error_code ec;
    std::size_t read = co_await stream_.async_read_some(
        buffer_.prepare(kFirstReadBytes), asio::redirect_error(asio::use_awaitable, ec));
    buffer_.commit(read);
    // The TLS stream reports the client's close_notify as eof; Beast's parser, end_of_stream.
    if (ec == asio::error::eof) co_return http::error::end_of_stream;
    if (ec) co_return ec;
  }
}

// Ends a connection whose next request could not be read.
asio::awaitable<void> HttpSession::end_unread(const error_code& ec) {
  if (ec == asio::error::operation_aborted && connection_.stopping()) {
    co_await close_idle();  // woken between requests: the service is stopping
    co_return;
  }
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
    // The client sent close_notify, between requests or in the middle of one: answer it, so
    // that neither side sees the connection cut off while the other is still reading.
    co_await close_politely();
    co_return;
  }
  if (is_parse_error(ec)) {
    // Not HTTP, or too much of it: say so once, then close.
    malformed_.add();
    version_ = 11;
    head_request_ = false;
    keep_alive_ = false;
    bool too_large = ec == http::error::header_limit;
    bool written = co_await send_error(OciError::not_found,
                                       too_large ? "request header too large" : "malformed request",
                                       too_large ? 431 : 400);
    if (written) co_await close_politely();
    co_return;
  }
  // A timeout, a reset, or TCP closed without close_notify: nothing to answer.
  if (ec != beast::error::timeout && ec != asio::error::operation_aborted &&
      ec != asio::ssl::error::stream_truncated) {
    log_.debug("{}: request not read: {}", connection_.peer.to_string(), ec.message());
  }
}

// No close_notify, so the client sees a transfer cut short rather than a complete response.
// A reset, not a FIN: a FIN would wait behind the unsent bytes, which a client that stopped
// reading never takes, so the kernel would keep the orphaned socket and up to its whole send
// buffer for minutes, and the client would not learn that the transfer broke.
void HttpSession::abort() {
  error_code ignored;
  tcp_.socket().set_option(asio::socket_base::linger(true, 0), ignored);
  tcp_.socket().close(ignored);
}

// Whether the socket has no bytes of a request yet. One already sent when the service began to
// stop is served, not cut off; one that arrives after this check meets a closed connection, which
// clients retry as they do any keep-alive connection the server closed.
bool HttpSession::nothing_arriving() {
  error_code ec;
  return tcp_.socket().available(ec) == 0;
}

// An idle client answers a close_notify only when it next uses the connection: send ours without
// waiting for that.
asio::awaitable<void> HttpSession::close_idle() {
  SSL_set_shutdown(stream_.native_handle(), SSL_RECEIVED_SHUTDOWN);
  co_await close_politely();
}

asio::awaitable<void> HttpSession::close_politely() {
  error_code ec;
  tcp_.expires_after(std::chrono::seconds(5));
  co_await stream_.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace pullthrough::proxy
