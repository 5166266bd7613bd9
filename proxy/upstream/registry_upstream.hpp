// The registry proxy's view of a real registry: send one pull request (GET or HEAD on an OCI
// distribution path), get back the response header and a body to stream. Authentication and
// redirects happen behind this interface. The production implementation is UpstreamClient
// (proxy/upstream/client.hpp); unit tests of the layers above use a scripted double.
#pragma once

#include "core/asio.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/error_code.hpp>

namespace pullthrough::proxy {

// Why a request produced no response, in the kinds the upstream error counters are kept by.
enum class UpstreamFailure : std::uint8_t {
  resolve,       // the name did not resolve
  own_address,   // the name resolves to this appliance: asking it would loop
  connect,       // refused, unreachable, or not connected within the connect timeout
  tls,           // handshake or certificate verification failed
  timeout,       // connected, but the response (or the next body bytes) did not come in time
  protocol,      // malformed HTTP, an oversized header, too many redirects
  auth,          // the token endpoint failed or gave no usable token
  shutting_down  // the appliance is stopping
};

std::string_view to_string(UpstreamFailure failure);

struct BodyRead {
  std::size_t bytes = 0;  // 0 with no error: the body is complete
  boost::system::error_code error;
};

// The body of one upstream response, read in order. When the body has been read to its end the
// connection goes back to the pool; destroying it earlier closes the connection. Used by one
// coroutine at a time; it may be moved between coroutines (and threads) between reads.
class UpstreamBody {
 public:
  virtual ~UpstreamBody() = default;
  // Up to out.size() bytes. A body that stops arriving for the read timeout fails with
  // beast::error::timeout; one cut short with http::error::partial_message or the transport error.
  virtual boost::asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) = 0;
  // The Content-Length the upstream announced, if any (chunked responses have none).
  virtual std::optional<std::uint64_t> content_length() const = 0;
};

// A body read whole: what reads like a manifest or a token answer, never a blob.
struct WholeBody {
  std::string bytes;
  // http::error::body_limit when the body is longer than the limit (then `bytes` is incomplete),
  // else the first read error.
  boost::system::error_code error;
};

// Reads `body` to its end, keeping at most `limit` bytes. A body announcing a longer
// Content-Length fails at once, without reading.
boost::asio::awaitable<WholeBody> read_whole_body(UpstreamBody& body, std::size_t limit);

struct UpstreamRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;  // get or head
  // Origin form, already validated: "/v2/library/alpine/manifests/latest", "/v2/", with any query.
  std::string target;
  // The repository the request is about, for the token scope "repository:<name>:pull"; empty
  // for "/v2/".
  std::string repository;
  // Sent as is when not empty (manifest media types the client accepts).
  std::string accept;
};

struct UpstreamResponse {
  // The final response, after authentication and redirects: its status and fields.
  boost::beast::http::response_header<> header;
  // Null for HEAD and for responses without a body.
  std::unique_ptr<UpstreamBody> body;
  // Where the final response came from ("https://host[:port]/path"), for logs.
  std::string url;
};

struct UpstreamResult {
  std::optional<UpstreamResponse> response;  // set when any HTTP response arrived, 5xx included
  UpstreamFailure failure = UpstreamFailure::protocol;  // when there is no response
  std::string error;                                    // when there is no response, for logs
};

// A result without a response, for `failure` and a message saying why.
UpstreamResult upstream_failure(UpstreamFailure failure, std::string error);

class RegistryUpstream {
 public:
  virtual ~RegistryUpstream() = default;
  // Sends the request and returns the response header. Runs on the awaiting coroutine's executor;
  // any number may be in flight at once, from any threads.
  virtual boost::asio::awaitable<UpstreamResult> send(UpstreamRequest request) = 0;
};

}  // namespace pullthrough::proxy
