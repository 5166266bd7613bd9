#include "proxy/upstream/hop_fields.hpp"

#include <algorithm>
#include <array>

#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

// RFC 9110 7.6.1 (Connection, Proxy-Connection, Keep-Alive, TE, Transfer-Encoding, Upgrade),
// Trailer (what a chunked body's trailer holds is this hop's), and the proxy's own authentication.
constexpr std::array<std::string_view, 9> kHopByHop = {
    "connection", "keep-alive",         "proxy-connection",   "te", "trailer", "transfer-encoding",
    "upgrade",    "proxy-authenticate", "proxy-authorization"};

}  // namespace

bool is_hop_by_hop(std::string_view name) {
  return std::any_of(kHopByHop.begin(), kHopByHop.end(),
                     [name](std::string_view hop) { return core::iequals(name, hop); });
}

}  // namespace pullthrough::proxy
