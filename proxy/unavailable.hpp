// What the TLS front door runs behind it until the registry cache is in this build: every request
// gets a 503 with an OCI error body, so clients see a clear reason instead of a dropped connection.
#pragma once

#include "core/asio.hpp"

#include <boost/asio/awaitable.hpp>

#include "certs/front_door.hpp"

namespace pullthrough::proxy {

boost::asio::awaitable<void> answer_unavailable(certs::TlsConnection connection);

}  // namespace pullthrough::proxy
