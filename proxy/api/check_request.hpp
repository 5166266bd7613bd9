// The checks every request header passes before a handler sees it, and what kind of request it
// is, as a pure function of the header and the connection's registry: no I/O, so each rule is
// unit-tested on its own.
//   - The Host field names the registry the TLS server name chose (an HTTP/1.0 request may leave
//     it out); a client cannot ride one registry's connection to another.
//   - A path within /v2/ must be within the spec's grammars (proxy/route.hpp maps each grammar
//     failure to its OCI error); a path outside the API is passed through.
//   - Pulls carry no body; a request with one is refused before anything reads it.
//   - With registries[].push: deny, anything that would write upstream is refused with a 405
//     that says where to push instead.
#pragma once

#include "core/asio.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/message.hpp>

#include "config/config.hpp"
#include "proxy/oci_error.hpp"
#include "proxy/route.hpp"

namespace pullthrough::proxy {

// Why a request is refused, and how to answer it.
struct Refusal {
  OciError error = OciError::not_found;
  std::string message;
  unsigned status = 0;  // 0: the error's own status
  bool close = false;   // the connection cannot be trusted to carry another request
};

// What answers a request that passed.
enum class RequestKind : std::uint8_t {
  base,         // GET or HEAD of /v2/
  pull,         // GET or HEAD of a manifest or a blob: the cache
  listing,      // GET or HEAD of tags/list or referrers
  push,         // an upload, a manifest PUT, a DELETE of a manifest or a blob
  token,        // the appliance's token endpoint (GET, or POST of a form)
  passthrough,  // anything else on the registry's host, passed upstream as it is
};

struct CheckedRequest {
  bool passed = false;
  RequestKind kind = RequestKind::passthrough;  // when passed
  std::optional<Route> route;                   // when passed and the path is an API route
  Refusal refusal;                              // when not passed
};

// `has_body`: the request announced a body (a non-zero Content-Length, or chunked).
// `registry` is the registry the connection's server name chose, `server_name` that name.
CheckedRequest check_request(const http::request_header<>& request, bool has_body,
                             const config::Config& config, const config::RegistryConfig* registry,
                             std::string_view server_name);

// The host part of a Host field value, lower case: "quay.io", "quay.io:443", "[::1]:443".
std::string host_of(std::string_view value);

}  // namespace pullthrough::proxy
