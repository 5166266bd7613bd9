// One request to a running appliance's admin listener, for the commands that manage it
// (`pullthrough clients`, `pullthrough cache`).
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>

#include <boost/beast/http.hpp>

#include "app/cli.hpp"
#include "config/config.hpp"
#include "core/net.hpp"

namespace pullthrough::app {

struct AdminAnswer {
  std::optional<http::response<http::string_body>> response;
  std::string error;  // when there is no response: what failed (connect, send, read)
};

// Sends `method target` and reads the whole answer, within `timeout`. With a `token`, the
// request carries it as `Authorization: Bearer <token>`.
AdminAnswer ask_admin(const core::Endpoint& admin, http::verb method, const std::string& target,
                      const std::string& token = {},
                      std::chrono::seconds timeout = std::chrono::seconds(10));

// Where the configuration's admin listener is reached from this machine: admin.listen, with an
// unspecified address replaced by loopback.
core::Endpoint admin_endpoint(const config::Config& config);

// `http://host:port` or `host:port`; nothing for anything else.
std::optional<core::Endpoint> parse_admin_url(std::string_view url);

// The first line of a token file, without its line break; nothing when unreadable or empty.
std::optional<std::string> read_token_file(const std::string& path);

// Where a command that changes a running appliance sends its requests, and with what token: its
// --admin URL or the configuration's admin.listen, its --token-file or admin.token_file.
struct AdminTarget {
  core::Endpoint endpoint;
  std::string token;  // empty: none configured
};
// Nothing, after saying why on `err`, for a bad --admin URL or an unreadable token file.
std::optional<AdminTarget> admin_target(const config::Config& config, const Command& command,
                                        std::ostream& err);

}  // namespace pullthrough::app
