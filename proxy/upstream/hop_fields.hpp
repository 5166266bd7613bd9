// The header fields that belong to one connection, not to the message (RFC 9110 7.6.1): a proxy
// neither forwards them nor relays them back. One list for the request going upstream and the
// response coming back.
#pragma once

#include <string_view>

namespace pullthrough::proxy {

// Whether `name` (any case) is a hop-by-hop field by definition. Fields that a Connection field
// names are hop-by-hop too; the caller checks those.
bool is_hop_by_hop(std::string_view name);

}  // namespace pullthrough::proxy
