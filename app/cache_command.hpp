// `pullthrough cache ls|du|gc|rm|pin|unpin|pins`: asks a running cache's admin listener
// (app/cache_admin.hpp) and prints its answer for people, or as JSON with --json.
#pragma once

#include <iosfwd>
#include <string>

#include "app/cli.hpp"
#include "config/config.hpp"

namespace pullthrough::app {

// `config` names the admin listener and token unless the command names its own.
int cache_command(const config::Config& config, const Command& command, std::ostream& out,
                  std::ostream& err);

// The human forms of the admin's JSON answers; each throws what nlohmann::json throws for a body
// that is not such an answer.
std::string format_refs(const std::string& json);
std::string format_usage(const std::string& json);
std::string format_collection(const std::string& json);
std::string format_pins(const std::string& json);

// 1536 -> "1.5 KiB"; below 1 KiB in bytes ("512 B").
std::string human_size(std::uint64_t bytes);

}  // namespace pullthrough::app
