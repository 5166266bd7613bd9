// One TLS connection's HTTP/1.1 exchange with a client: the read loop with its header limit and
// request timeout, request bodies read as the handler consumes them, the writes with their write
// timeout, upstream responses relayed as they arrive, and how the connection ends: a polite
// close_notify, or a reset after a response that could not be completed. It speaks the OCI error
// format but knows no endpoint: each request header goes to the handler it runs with.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/logger.h>

#include "core/counters.hpp"
#include "proxy/blob_fetches.hpp"
#include "proxy/front_door.hpp"
#include "proxy/oci_error.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

struct HttpLimits {
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  // From the end of one response (or the handshake) until the next request's header is in.
  std::chrono::milliseconds request_timeout = std::chrono::seconds(60);
  // Each write to the client must complete within this: about 4 KiB/s at the least.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(60);
  // Body bytes are read from the store and written to the client this much at a time: a few TLS
  // records, small enough that many connections' buffers stay in the CPU caches.
  std::size_t chunk_bytes = std::size_t{64} * 1024;
};

class HttpSession {
 public:
  using Parser = http::request_parser<http::empty_body>;
  // Answers one request. False when its response could not be completed (a write failed or
  // timed out, a transfer was cut off): the connection is then reset.
  using Handler = std::function<asio::awaitable<bool>(HttpSession&, Parser&)>;

  // `limits`, `malformed` (counts requests that are not HTTP or exceed the header limit) and `log`
  // must outlive the session.
  HttpSession(TlsConnection connection, const HttpLimits& limits, core::Counter& malformed,
              spdlog::logger& log);

  // Serves requests until the client closes, a limit or timeout is hit, or the service stops.
  asio::awaitable<void> run(const Handler& handle);

  const TlsConnection& connection() const { return connection_; }
  // The connection closes after the response in hand (for a request whose body went unread).
  void close_after_response() { keep_alive_ = false; }

  // The request's body, read from the client as the returned source is read: each read waits at
  // most the request timeout for bytes (a 5 GiB upload has no deadline of its own, a stalled one
  // ends), and answers `Expect: 100-continue` first. Null when the request has no body. Call at
  // most once per request, before writing its response; the source is valid until the handler
  // returns. A body not read to its end closes the connection after the response.
  std::unique_ptr<BodySource> request_body(Parser& parser);

  // Responses carrying the session's HTTP version, keep-alive and the registry API's fields.
  http::response<http::string_body> response(http::status status) const;
  http::response<http::empty_body> header_response(http::status status) const;

  // Each returns false when the write failed or timed out.
  asio::awaitable<bool> write(http::response<http::string_body>& response);
  asio::awaitable<bool> write_header(http::response<http::empty_body>& header);
  // An OCI error body; `status` overrides the error's own when not 0. HEAD gets the header alone.
  asio::awaitable<bool> send_error(OciError error, std::string message, unsigned status = 0,
                                   std::string retry_after = {});
  // Streams bytes [from, to) of `reader` after write_header(); with `fetch`, the bytes are still
  // arriving and each is sent once the fetch makes it sendable. `sent` counts what went out.
  asio::awaitable<StreamStatus> send_body(BlobReader& reader, std::uint64_t from, std::uint64_t to,
                                          BlobFetch* fetch, core::Counter& sent);
  // Streams the `length` bytes of `stream` (a stored blob's range) after write_header().
  asio::awaitable<StreamStatus> send_stored(BlobStream& stream, std::uint64_t length,
                                            core::Counter& sent);

  // Relays an upstream response: `header`'s status and fields (the caller has already chosen
  // them) with the session's version and keep-alive, then `body` streamed as it arrives, with
  // Content-Length when `header` has one, else chunked. No body for HEAD, 1xx, 204 and 304. False
  // when a write failed or the body broke off (the client then sees the response cut short).
  asio::awaitable<bool> relay(http::response_header<> header, BodySource* body);

  // Cuts the connection off with a reset, so the client sees an incomplete response as one.
  void abort();

 private:
  using BodyWriter = std::function<asio::awaitable<StreamStatus>(const StreamSink& sink)>;
  // Runs `write` with a sink that sends `length` bytes of body after the header.
  asio::awaitable<StreamStatus> send_with_sink(std::uint64_t length, core::Counter& sent,
                                               const BodyWriter& write);

  class ClientBody;
  template <typename Body>
  void common_fields(http::response<Body>& response) const;
  bool keep_alive() const { return keep_alive_ && !body_unread_; }
  asio::awaitable<error_code> skip_empty_lines();
  asio::awaitable<void> end_unread(const error_code& ec);
  asio::awaitable<void> close_politely();
  asio::awaitable<void> close_idle();
  bool nothing_arriving();

  TlsConnection connection_;
  const HttpLimits& limits_;
  core::Counter& malformed_;
  spdlog::logger& log_;
  TlsStream& stream_;
  beast::tcp_stream& tcp_;
  beast::flat_buffer buffer_;
  std::vector<std::uint8_t> chunk_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
  // The request in hand announced a body that has not been read to its end.
  bool body_unread_ = false;
  // Waiting for the next request with nothing of it read yet: stopping may end the connection.
  bool idle_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace pullthrough::proxy
