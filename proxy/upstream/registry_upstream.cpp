#include "proxy/upstream/registry_upstream.hpp"

#include "core/asio.hpp"

#include <algorithm>

#include <boost/beast/http/error.hpp>

namespace pullthrough::proxy {

std::string_view to_string(UpstreamFailure failure) {
  switch (failure) {
    case UpstreamFailure::resolve:
      return "resolve";
    case UpstreamFailure::own_address:
      return "own_address";
    case UpstreamFailure::connect:
      return "connect";
    case UpstreamFailure::tls:
      return "tls";
    case UpstreamFailure::timeout:
      return "timeout";
    case UpstreamFailure::protocol:
      return "protocol";
    case UpstreamFailure::auth:
      return "auth";
    case UpstreamFailure::request_body:
      return "request_body";
    case UpstreamFailure::shutting_down:
      return "shutting_down";
  }
  return "unknown";
}

UpstreamResult upstream_failure(UpstreamFailure failure, std::string error) {
  UpstreamResult result;
  result.failure = failure;
  result.error = std::move(error);
  return result;
}

boost::asio::awaitable<WholeBody> read_whole_body(UpstreamBody& body, std::size_t limit) {
  // Reads go straight into the string's tail; one byte past the limit tells "exactly at the
  // limit" from "over it" without reading the rest.
  constexpr std::size_t kReadSize = std::size_t{16} * 1024;
  WholeBody out;
  if (auto length = body.content_length(); length && *length > limit) {
    out.error = http::error::body_limit;
    co_return out;
  }
  for (;;) {
    std::size_t have = out.bytes.size();
    std::size_t want = std::min(kReadSize, limit + 1 - have);
    out.bytes.resize(have + want);
    BodyRead read = co_await body.read_some(
        std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(out.bytes.data() + have), want));
    out.bytes.resize(have + read.bytes);
    if (read.error) {
      out.error = read.error;
      co_return out;
    }
    if (read.bytes == 0) co_return out;
    if (out.bytes.size() > limit) {
      out.bytes.resize(limit);
      out.error = http::error::body_limit;
      co_return out;
    }
  }
}

}  // namespace pullthrough::proxy
