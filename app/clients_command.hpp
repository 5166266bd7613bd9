// `pullthrough clients ls|add|rm`: the enrolled set of a running appliance, through the /clients
// pages of its admin listener (app/admin.hpp).
#pragma once

#include <iosfwd>
#include <string>

#include "app/cli.hpp"
#include "config/config.hpp"

namespace pullthrough::app {

// Runs a clients_* command against admin.listen of `config`; returns the exit status (0 done,
// 1 the appliance refused or could not be reached, 2 a bad address).
int clients_command(const config::Config& config, const Command& command, std::ostream& out,
                    std::ostream& err);

// The endpoint a local command reaches the admin listener at: its address, or loopback for a
// wildcard one.
// `clients ls` as text, from the JSON of GET /clients. Throws on JSON that is not that.
std::string format_clients(const std::string& json);

}  // namespace pullthrough::app
