// A blocking TLS client for the proxy tests: one connection to a TLS front door on 127.0.0.1,
// verifying the server's certificate against the test CA for the name it sends as SNI.
#pragma once

#include "core/asio.hpp"

#include <array>
#include <cstdint>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace pullthrough::proxy::testing {

class TlsClient {
 public:
  // `receive_buffer` (bytes, 0 = the kernel's default) bounds what the client's kernel takes in
  // for it while it does not read; it is set before connecting, so the window is sized by it.
  TlsClient(std::uint16_t port, const std::string& ca_pem, const std::string& server_name,
            int receive_buffer = 0)
      : tls_(ssl::context::tls_client), stream_(io_, tls_) {
    tls_.add_certificate_authority(asio::buffer(ca_pem));
    tls_.set_verify_mode(ssl::verify_peer);
    SSL_set_tlsext_host_name(stream_.native_handle(), server_name.c_str());
    stream_.set_verify_callback(ssl::host_name_verification(server_name));
    auto& socket = stream_.next_layer();
    socket.open(asio::ip::tcp::v4());
    if (receive_buffer > 0) {
      socket.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
    }
    socket.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    stream_.handshake(ssl::stream_base::client);
  }

  void send(const std::string& bytes) { asio::write(stream_, asio::buffer(bytes)); }

  // Exactly `count` bytes; throws when the connection ends first.
  std::string read_exactly(std::size_t count) {
    std::string out(count, '\0');
    asio::read(stream_, asio::buffer(out));
    return out;
  }

  // Whatever comes next, at most `limit` bytes; empty with `ec` set at the end.
  std::string read_some(std::size_t limit, error_code& ec) {
    std::string out(limit, '\0');
    out.resize(stream_.read_some(asio::buffer(out), ec));
    return out;
  }

  // Reads until the connection ends, whatever comes; the number of bytes read.
  std::size_t drain() {
    std::array<char, 16384> buffer{};
    std::size_t total = 0;
    for (;;) {
      error_code ec;
      total += stream_.read_some(asio::buffer(buffer), ec);
      if (ec) return total;
    }
  }

  // A GET with the fields every client sends, and `user_agent`.
  void get(const std::string& target, const std::string& host,
           const std::string& user_agent = "test") {
    send("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: " + user_agent +
         "\r\n\r\n");
  }

  // A request with the fields every client sends, and `extra_fields` (each ending in CRLF).
  void request(const std::string& method, const std::string& target,
               const std::string& extra_fields = "", const std::string& host = "quay.io") {
    send(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: test\r\n" +
         extra_fields + "\r\n");
  }

  // The next response; a response to HEAD has no body. Throws when the connection ends first.
  http::response<http::string_body> response(bool head = false) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{64} * 1024 * 1024);
    parser.skip(head);
    http::read(stream_, buffer_, parser);
    return parser.release();
  }

  // Sends close_notify and waits for the server's: "close_notify" when it came.
  std::string shutdown() {
    error_code ec;
    stream_.shutdown(ec);
    return ec ? "no close_notify: " + ec.message() : "close_notify";
  }

  // Reads until the connection ends: "close_notify" when the server said goodbye in TLS, "cut"
  // when the TCP connection ended without it, or the unexpected bytes or error.
  std::string ending() {
    error_code ec;
    char byte = 0;
    std::size_t n = stream_.read_some(asio::buffer(&byte, 1), ec);
    if (n != 0) return "more bytes: " + std::string(1, byte);
    if (ec == asio::error::eof) return "close_notify";
    if (ec == ssl::error::stream_truncated || ec == asio::error::connection_reset) return "cut";
    return ec.message();
  }

  // Ends the TCP connection without a TLS goodbye: with a FIN, or with a reset (SO_LINGER 0).
  void close(bool reset) {
    auto& socket = stream_.next_layer();
    error_code ignored;
    if (reset) socket.set_option(asio::socket_base::linger(true, 0), ignored);
    socket.close(ignored);
  }

 private:
  asio::io_context io_;
  ssl::context tls_;
  ssl::stream<asio::ip::tcp::socket> stream_;
  beast::flat_buffer buffer_;
};

}  // namespace pullthrough::proxy::testing
