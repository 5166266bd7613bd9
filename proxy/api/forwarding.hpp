// What crosses the appliance when a request is passed through (push, listings, the token
// endpoint, paths the cache does not serve), as pure functions of the messages:
//  - the client's request fields that go upstream, and the upstream's response fields that come
//    back: all but the hop-by-hop ones (RFC 9110 7.6.1), which belong to each connection;
//  - Location, rewritten so that a client sent to the upstream's own origin comes back to the
//    intercepted host it used (port kept; path, `_state` and query byte for byte); any other
//    Location passes unchanged;
//  - WWW-Authenticate, with each Bearer realm pointed at the appliance's token endpoint.
#pragma once

#include "core/asio.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>

#include "proxy/upstream/url.hpp"

namespace pullthrough::proxy {

// The client's fields to send upstream: all but Host, the hop-by-hop fields (Connection and the
// fields it names, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade), Content-Length
// (set from the body) and Expect (answered by the session).
http::fields forwarded_request_fields(const http::request_header<>& request);

// A Location value to give the client: an absolute URL on `upstream` becomes the same URL on
// https://<client_host>; anything else is returned as it is.
std::string rewritten_location(std::string_view location, const Origin& upstream,
                               std::string_view client_host);

struct RelayedHeader {
  http::response_header<> header;
  // The real realm of a Bearer challenge the header carried, for the realm book.
  std::optional<Location> realm;
};

// The upstream response header to give the client: its status and fields without the hop-by-hop
// ones (Content-Length kept), Location rewritten, and each WWW-Authenticate rewritten (a value
// that cannot be rewritten is dropped: its realm could not be reached through the appliance).
RelayedHeader relayed_response_header(const http::response_header<>& upstream,
                                      const Origin& upstream_origin, std::string_view client_host);

// The WWW-Authenticate values of a response, in order.
std::vector<std::string> challenge_values(const http::response_header<>& header);

// WWW-Authenticate values as upstream sent them, rewritten for `client_host` (those that cannot
// be are dropped).
std::vector<std::string> rewritten_challenges(const std::vector<std::string>& values,
                                              std::string_view client_host);

}  // namespace pullthrough::proxy
