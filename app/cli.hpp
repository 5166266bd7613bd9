// The command line: `pullthrough serve|check-config|ca|clients|cache|prefetch|version|help`,
// each with --help.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullthrough::app {

enum class Role { all, dns, proxy };

std::string_view to_string(Role role);

struct Command {
  enum class Kind {
    serve,
    check_config,
    version,
    help,
    ca_export,
    ca_info,
    clients_ls,
    clients_add,
    clients_rm,
    cache_ls,
    cache_du,
    cache_rm,
    cache_gc,
    cache_pin,
    cache_unpin,
    cache_pins,
    prefetch
  };
  Kind kind = Kind::help;
  std::string config_file;  // empty: the embedded default configuration
  Role role = Role::all;
  bool der = false;        // ca export --der
  bool json = false;       // clients ls, cache ls|du|rm|gc|pins --json
  std::string client;      // clients add|rm ADDRESS
  std::string ref;         // cache ls GLOB, cache rm|pin|unpin REF
  bool dry_run = false;    // cache rm|gc --dry-run
  std::string admin_url;   // cache --admin URL: instead of the configuration's admin.listen
  std::string token_file;  // cache, prefetch --token-file FILE: instead of the configuration's
  std::vector<std::string> refs;  // prefetch REF...
  std::string ref_file;           // prefetch --file LIST
  std::string platform;           // prefetch --platform os/arch[/variant]
  bool all_platforms = false;     // prefetch --all-platforms
  std::string help_topic;         // for Kind::help: "" (overview) or a command name
};

struct ParsedCommandLine {
  std::optional<Command> command;
  std::string error;  // set when command is empty: what was wrong, for stderr with exit code 2
};

// args excludes the program name.
ParsedCommandLine parse_command_line(const std::vector<std::string_view>& args);

// The help text for a topic ("" for the overview, or a command name).
std::string help_text(std::string_view topic);

}  // namespace pullthrough::app
