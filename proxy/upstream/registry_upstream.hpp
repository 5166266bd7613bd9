// The registry proxy's view of a real registry. Two kinds of exchange:
//  - send(): a pull request (GET or HEAD on an OCI distribution path) made for the cache, on
//    the appliance's behalf or a client's (UpstreamAuth); redirects are followed, and with the
//    appliance's own access a 401 is answered behind this interface.
//  - forward(): a request passed through as a client made it (push, token requests, paths the
//    cache does not serve), its body streamed, sent once; the response comes back as it was.
// Either way the caller gets the response header and a body to stream. The production
// implementation is UpstreamClient (proxy/upstream/client.hpp); unit tests of the layers above
// use a scripted double.
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

#include "proxy/upstream/url.hpp"

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
  request_body,  // forward(): the client's request body broke off or stalled
  shutting_down  // the appliance is stopping
};

std::string_view to_string(UpstreamFailure failure);

struct BodyRead {
  std::size_t bytes = 0;  // 0 with no error: the body is complete
  boost::system::error_code error;
};

// A message body read in order: an upstream response's, or a client request's on its way
// upstream. Used by one coroutine at a time; it may be moved between coroutines (and threads)
// between reads.
class BodySource {
 public:
  virtual ~BodySource() = default;
  // Up to out.size() bytes; 0 bytes with no error: the body is complete. A body that stops
  // arriving for the read timeout fails with beast::error::timeout; one cut short with
  // http::error::partial_message or the transport error.
  virtual boost::asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) = 0;
  // The Content-Length announced, if any (chunked bodies have none).
  virtual std::optional<std::uint64_t> content_length() const = 0;
};

// The body of one upstream response. When it has been read to its end the connection goes back
// to the pool; destroying it earlier closes the connection.
using UpstreamBody = BodySource;

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

// On whose behalf send() asks.
enum class UpstreamAuth : std::uint8_t {
  // The appliance's own access: anonymous, or registries[].credentials. A 401 is answered
  // (token from the realm, or Basic) and the request sent again.
  appliance,
  // Anonymous access only, even when the registry has credentials: what anyone may read.
  anonymous,
  // UpstreamRequest::authorization exactly as the client sent it (none when empty). A 401 is the
  // response: the challenge is the client's to answer.
  client,
};

// On whose behalf a request goes upstream, and with what.
struct UpstreamCredentials {
  UpstreamAuth auth = UpstreamAuth::appliance;
  // With UpstreamAuth::client: the client's Authorization value (empty: none). Sent to the
  // registry's own origin only, never to a redirect's.
  std::string authorization;
};

struct UpstreamRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;  // get or head
  // Origin form, already validated: "/v2/library/alpine/manifests/latest", "/v2/", with any query.
  std::string target;
  // The repository the request is about, for the token scope "repository:<name>:pull"; empty
  // for "/v2/".
  std::string repository;
  // Sent as is when not empty (manifest media types the client accepts).
  std::string accept;
  UpstreamCredentials credentials;
};

// A request passed through as the client made it. Sent once (so a request with a body goes out
// on a new connection: a pooled one the server has closed could not be retried once the body
// has begun to stream); neither a 401 nor a redirect is acted on.
struct ForwardRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  // Origin form, as the client sent it (path and query byte for byte).
  std::string target;
  // The fields to send, chosen by the caller (Authorization, Content-Type, Content-Range,
  // Accept, ...). Host, Content-Length and Transfer-Encoding are set here and must not be in it.
  boost::beast::http::fields fields;
  // The body, streamed: with Content-Length when the source announces one, else chunked. Null:
  // no body. Must outlive the exchange.
  BodySource* body = nullptr;
  // Where to send it: the registry's own upstream when empty; else an origin the caller vouches
  // for (the token realm the registry's challenge named, never one a client chose). The
  // registry's ca_file is trusted there too.
  std::optional<Origin> origin;
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
  // Passes a client's request through (see ForwardRequest); as send() otherwise. A body that
  // breaks off or stalls fails with UpstreamFailure::request_body.
  virtual boost::asio::awaitable<UpstreamResult> forward(ForwardRequest request) = 0;
};

}  // namespace pullthrough::proxy
