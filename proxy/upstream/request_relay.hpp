// Streams a request body from a BodySource onto an upstream connection (forward()), one piece at
// a time: each piece is written before the next is read, so memory stays at one piece whatever
// the body's size (a layer of several GiB is pushed through a 64 KiB buffer).
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include "proxy/upstream/connection.hpp"
#include "proxy/upstream/registry_upstream.hpp"

namespace pullthrough::proxy {

// The most read from the body source, and written upstream, at a time.
inline constexpr std::size_t kRelayPieceBytes = std::size_t{64} * 1024;

struct RelayResult {
  enum class Outcome : std::uint8_t {
    sent,          // header and whole body written
    body_failed,   // the source failed, or gave fewer or more bytes than it announced
    write_failed,  // the connection failed or a write timed out (upstream may have answered)
  };
  Outcome outcome = Outcome::sent;
  // The source's error (http::error::partial_message when it ended short of its announced
  // length, http::error::body_limit when it ran past it) or the connection's.
  boost::system::error_code error;
  std::uint64_t body_bytes = 0;  // body bytes written upstream
};

// Writes `request` (its fields and framing already set: Content-Length when `body` announces
// one, else chunked) and then `body` onto `connection`. Every write has `write_timeout` as its own
// deadline. A failed source stops the relay at once: the connection must then be closed, never
// reused (upstream holds a truncated body; for a chunked one the last chunk was not sent, so it
// cannot look complete).
boost::asio::awaitable<RelayResult> relay_request(Connection& connection,
                                                  UpstreamStreamedRequest& request,
                                                  BodySource& body,
                                                  std::chrono::milliseconds write_timeout);

}  // namespace pullthrough::proxy
