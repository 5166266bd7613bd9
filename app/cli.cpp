#include "app/cli.hpp"

#include <optional>
#include <string>

namespace pullthrough::app {
namespace {

constexpr std::string_view kOverview =
    R"(pullthrough: a pull-through container registry cache for a LAN, with the DNS that points
clients at it and falls back to the real registries when it is unhealthy.

Usage:
  pullthrough serve [--config FILE] [--role all|dns|proxy]
  pullthrough check-config FILE
  pullthrough ca export [--der] [--config FILE]
  pullthrough ca info [--config FILE]
  pullthrough clients ls [--json] [--config FILE]
  pullthrough clients add|rm ADDRESS [--config FILE]
  pullthrough cache ls [GLOB] [--json] | du [--json] | gc [--dry-run] [--json]
  pullthrough cache rm REF [--dry-run] [--json] | pin REF | unpin REF | pins [--json]
  pullthrough prefetch REF... [--file LIST] [--platform os/arch | --all-platforms]
  pullthrough version
  pullthrough help [COMMAND]

Every command takes --help. Exit status: 0 success, 1 failure at run time, 2 bad usage or
configuration.
)";

constexpr std::string_view kServe =
    R"(Usage: pullthrough serve [--config FILE] [--role all|dns|proxy]

Runs the appliance until SIGINT or SIGTERM, then closes its listeners, lets in-flight work finish
within a deadline and exits 0.

  --config FILE   the YAML configuration; without it, the built-in defaults
                  (config/pullthrough.yaml, compiled in)
  --role ROLE     all (default): DNS responder, health monitor and registry cache;
                  dns: only the DNS responder and health monitor;
                  proxy: only the registry cache
)";

constexpr std::string_view kCheckConfig = R"(Usage: pullthrough check-config FILE

Reads and validates FILE without starting anything. Prints every error as
FILE:LINE:COLUMN: KEY: MESSAGE and exits 2 if there is any, otherwise prints "FILE: ok" and
exits 0.
)";

constexpr std::string_view kCa = R"(Usage: pullthrough ca export [--der] [--config FILE]
       pullthrough ca info [--config FILE]

export  prints the appliance's CA certificate, PEM (or DER with --der), for clients to trust.
        Generates the CA first when state_dir has none yet, as serve would.
info    shows the CA's subject, SHA-256 fingerprint and validity, and the leaf certificates
        issued for intercepted names.

  --config FILE   the configuration that names state_dir or ca.cert_file; without it, the
                  built-in defaults
)";

constexpr std::string_view kClients = R"(Usage: pullthrough clients ls [--json] [--config FILE]
       pullthrough clients add ADDRESS [--config FILE]
       pullthrough clients rm ADDRESS [--config FILE]

Manages the enrolled clients of a running appliance through its admin listener (admin.listen of
the configuration; ask the process that runs the DNS role). With dns.intercept.clients: [enrolled]
only enrolled clients get the cache's addresses for the registries; /install.sh enrolls the
machine it runs on with POST /enroll.

ls   lists the enrolled clients, the clients that get the real registries for now because a TLS
     handshake showed they do not trust the CA (until when, and the alert seen), and how many
     clients were handed a cache's address in the last hour. --json: the admin's JSON as is.
add  enrolls ADDRESS, and ends its bypass if it has one.
rm   removes ADDRESS from the enrolled set.

  --config FILE   the configuration that names admin.listen; without it, the built-in defaults
)";

constexpr std::string_view kCache = R"(Usage: pullthrough cache ls [GLOB] [--json]
       pullthrough cache du [--json]
       pullthrough cache gc [--dry-run] [--json]
       pullthrough cache rm REF [--dry-run] [--json]
       pullthrough cache pin REF
       pullthrough cache unpin REF
       pullthrough cache pins [--json]

Looks after the images a running cache holds, through its admin listener (ask the process that
runs the proxy role). REF is host/repository:tag, host/repository@digest, or a glob:
quay.io/org/** (any depth), quay.io/org/*:1.* (`*` within one path segment or tag).

ls     one line per cached reference (a tag, or a manifest pulled by digest): its size, the part
       of it no other reference shares, when it was last used, whether it is pinned, and the
       retention rule that applies. --json: ref, digest, size, unique_size, last_used, pinned,
       rule (sizes in bytes, times in RFC 3339).
du     the bytes stored, storage.max_size, what pinned references keep, what may be evicted,
       and the bytes each registry's references reach (shared layers count in each).
gc     applies the retention rules and the size bound now (as retention.interval does) and says
       what went, or with --dry-run would go, why, and the bytes freed.
rm     removes the references REF names and whatever only they keep, pinned or not.
pin    keeps what REF names from expiry and eviction, across restarts, until unpin.
pins   lists the pins.

  --config FILE      the configuration that names admin.listen and admin.token_file; without
                     it, the built-in defaults
  --admin URL        the admin listener to ask instead (http://127.0.0.1:9090)
  --token-file FILE  the admin token for changes instead of the configuration's
)";

constexpr std::string_view kPrefetch =
    R"(Usage: pullthrough prefetch REF... [--file LIST] [--platform os/arch | --all-platforms]

Pulls images into a running cache ahead of need, through the cache's own fetch path (asked of
its admin listener: the process that runs the proxy role). REF is host/repository[:tag] (no tag:
latest) or host/repository@digest, of an intercepted registry. Of an image index only the
platform's manifest is fetched: --platform (default: linux and this machine's architecture) or
every one with --all-platforms.

On a terminal it shows each layer's bytes, rate and ETA, and a total; otherwise it prints a line
per layer as it completes and a summary. It exits 1 if any reference failed, and says which.

  --file LIST        more references, one per line (# starts a comment)
  --config FILE      the configuration that names admin.listen and admin.token_file
  --admin URL        the admin listener to ask instead (http://127.0.0.1:9090)
  --token-file FILE  the admin token for changes instead of the configuration's
)";

constexpr std::string_view kVersion = R"(Usage: pullthrough version

Prints the version, the commit it was built from and the versions of the libraries it runs on.
)";

bool is_help_flag(std::string_view arg) { return arg == "--help" || arg == "-h"; }

ParsedCommandLine fail(std::string message) {
  ParsedCommandLine out;
  out.error = std::move(message);
  return out;
}

ParsedCommandLine ok(Command command) {
  ParsedCommandLine out;
  out.command = std::move(command);
  return out;
}

Command help_for(std::string_view topic) {
  Command c;
  c.kind = Command::Kind::help;
  c.help_topic = std::string(topic);
  return c;
}

ParsedCommandLine parse_serve(const std::vector<std::string_view>& args) {
  Command c;
  c.kind = Command::Kind::serve;
  bool role_seen = false;
  bool config_seen = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (is_help_flag(arg)) return ok(help_for("serve"));
    std::string_view value;
    std::string_view name = arg;
    bool inline_value = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inline_value = true;
    }
    if (name != "--config" && name != "--role") {
      return fail("serve: unknown argument \"" + std::string(arg) +
                  "\" (see pullthrough serve --help)");
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) return fail("serve: " + std::string(name) + " needs a value");
      value = args[++i];
    }
    if (name == "--config") {
      if (config_seen) return fail("serve: --config given twice");
      if (value.empty()) return fail("serve: --config needs a file name");
      config_seen = true;
      c.config_file = std::string(value);
    } else {
      if (role_seen) return fail("serve: --role given twice");
      role_seen = true;
      if (value == "all") {
        c.role = Role::all;
      } else if (value == "dns") {
        c.role = Role::dns;
      } else if (value == "proxy") {
        c.role = Role::proxy;
      } else {
        return fail("serve: --role must be all, dns or proxy, not \"" + std::string(value) + "\"");
      }
    }
  }
  return ok(c);
}

ParsedCommandLine parse_ca(const std::vector<std::string_view>& args) {
  if (args.size() < 2)
    return fail("ca: needs a subcommand, export or info (see pullthrough ca --help)");
  Command c;
  if (is_help_flag(args[1])) return ok(help_for("ca"));
  if (args[1] == "export") {
    c.kind = Command::Kind::ca_export;
  } else if (args[1] == "info") {
    c.kind = Command::Kind::ca_info;
  } else {
    return fail("ca: unknown subcommand \"" + std::string(args[1]) + "\" (export or info)");
  }
  bool config_seen = false;
  for (std::size_t i = 2; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (is_help_flag(arg)) return ok(help_for("ca"));
    if (arg == "--der" && c.kind == Command::Kind::ca_export) {
      c.der = true;
      continue;
    }
    std::string_view value;
    if (arg.starts_with("--config=")) {
      value = arg.substr(9);
    } else if (arg == "--config") {
      if (i + 1 >= args.size()) return fail("ca: --config needs a value");
      value = args[++i];
    } else {
      return fail("ca: unknown argument \"" + std::string(arg) + "\" (see pullthrough ca --help)");
    }
    if (config_seen) return fail("ca: --config given twice");
    if (value.empty()) return fail("ca: --config needs a file name");
    config_seen = true;
    c.config_file = std::string(value);
  }
  return ok(c);
}

ParsedCommandLine parse_clients(const std::vector<std::string_view>& args) {
  if (args.size() < 2) {
    return fail("clients: needs a subcommand, ls, add or rm (see pullthrough clients --help)");
  }
  if (is_help_flag(args[1])) return ok(help_for("clients"));
  Command c;
  if (args[1] == "ls") {
    c.kind = Command::Kind::clients_ls;
  } else if (args[1] == "add") {
    c.kind = Command::Kind::clients_add;
  } else if (args[1] == "rm") {
    c.kind = Command::Kind::clients_rm;
  } else {
    return fail("clients: unknown subcommand \"" + std::string(args[1]) + "\" (ls, add or rm)");
  }
  bool config_seen = false;
  for (std::size_t i = 2; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (is_help_flag(arg)) return ok(help_for("clients"));
    if (arg == "--json" && c.kind == Command::Kind::clients_ls) {
      c.json = true;
      continue;
    }
    if (arg == "--config" || arg.starts_with("--config=")) {
      std::string_view value;
      if (arg == "--config") {
        if (i + 1 >= args.size()) return fail("clients: --config needs a value");
        value = args[++i];
      } else {
        value = arg.substr(9);
      }
      if (config_seen) return fail("clients: --config given twice");
      if (value.empty()) return fail("clients: --config needs a file name");
      config_seen = true;
      c.config_file = std::string(value);
      continue;
    }
    if (c.kind != Command::Kind::clients_ls && c.client.empty() && !arg.starts_with("-")) {
      c.client = std::string(arg);
      continue;
    }
    return fail("clients: unknown argument \"" + std::string(arg) +
                "\" (see pullthrough clients --help)");
  }
  if (c.kind != Command::Kind::clients_ls && c.client.empty()) {
    return fail("clients " + std::string(args[1]) + ": needs the client's IP address");
  }
  return ok(c);
}

// The value of `--name VALUE` or `--name=VALUE` at args[i] (advancing i); nothing when args[i]
// is not that option. `error` is set when the value is missing or given twice.
std::optional<std::string> option_value(const std::vector<std::string_view>& args, std::size_t& i,
                                        std::string_view name, bool seen, std::string& error) {
  std::string_view arg = args[i];
  std::string_view value;
  if (arg == name) {
    if (i + 1 >= args.size()) {
      error = std::string(name) + " needs a value";
      return std::string();
    }
    value = args[++i];
  } else if (arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=') {
    value = arg.substr(name.size() + 1);
  } else {
    return std::nullopt;
  }
  if (seen) error = std::string(name) + " given twice";
  if (value.empty()) error = std::string(name) + " needs a value";
  return std::string(value);
}

ParsedCommandLine parse_cache(const std::vector<std::string_view>& args) {
  if (args.size() < 2) {
    return fail(
        "cache: needs a subcommand, ls, du, gc, rm, pin, unpin or pins (see pullthrough "
        "cache --help)");
  }
  if (is_help_flag(args[1])) return ok(help_for("cache"));
  Command c;
  using Kind = Command::Kind;
  const std::string_view sub = args[1];
  if (sub == "ls") {
    c.kind = Kind::cache_ls;
  } else if (sub == "du") {
    c.kind = Kind::cache_du;
  } else if (sub == "gc") {
    c.kind = Kind::cache_gc;
  } else if (sub == "rm") {
    c.kind = Kind::cache_rm;
  } else if (sub == "pin") {
    c.kind = Kind::cache_pin;
  } else if (sub == "unpin") {
    c.kind = Kind::cache_unpin;
  } else if (sub == "pins") {
    c.kind = Kind::cache_pins;
  } else {
    return fail("cache: unknown subcommand \"" + std::string(sub) +
                "\" (ls, du, gc, rm, pin, unpin or pins)");
  }
  const bool takes_json = c.kind != Kind::cache_pin && c.kind != Kind::cache_unpin;
  const bool takes_dry_run = c.kind == Kind::cache_gc || c.kind == Kind::cache_rm;
  const bool takes_ref = c.kind == Kind::cache_ls || c.kind == Kind::cache_rm ||
                         c.kind == Kind::cache_pin || c.kind == Kind::cache_unpin;
  const std::string what = "cache " + std::string(sub);
  for (std::size_t i = 2; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (is_help_flag(arg)) return ok(help_for("cache"));
    if (arg == "--json" && takes_json) {
      c.json = true;
      continue;
    }
    if (arg == "--dry-run" && takes_dry_run) {
      c.dry_run = true;
      continue;
    }
    std::string error;
    if (auto v = option_value(args, i, "--config", !c.config_file.empty(), error)) {
      if (!error.empty()) return fail(what + ": " + error);
      c.config_file = std::move(*v);
      continue;
    }
    if (auto v = option_value(args, i, "--admin", !c.admin_url.empty(), error)) {
      if (!error.empty()) return fail(what + ": " + error);
      c.admin_url = std::move(*v);
      continue;
    }
    if (auto v = option_value(args, i, "--token-file", !c.token_file.empty(), error)) {
      if (!error.empty()) return fail(what + ": " + error);
      c.token_file = std::move(*v);
      continue;
    }
    if (takes_ref && c.ref.empty() && !arg.starts_with("-") && !arg.empty()) {
      c.ref = std::string(arg);
      continue;
    }
    return fail(what + ": unknown argument \"" + std::string(arg) +
                "\" (see pullthrough cache --help)");
  }
  if (takes_ref && c.kind != Kind::cache_ls && c.ref.empty()) {
    return fail(what + ": needs a REF (host/repository:tag, host/repository@digest or a glob)");
  }
  if (!c.admin_url.empty() && !c.config_file.empty()) {
    return fail(what + ": --admin and --config exclude each other");
  }
  return ok(c);
}

ParsedCommandLine parse_prefetch(const std::vector<std::string_view>& args) {
  Command c;
  c.kind = Command::Kind::prefetch;
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (is_help_flag(arg)) return ok(help_for("prefetch"));
    if (arg == "--all-platforms") {
      c.all_platforms = true;
      continue;
    }
    std::string error;
    if (auto v = option_value(args, i, "--config", !c.config_file.empty(), error)) {
      if (!error.empty()) return fail("prefetch: " + error);
      c.config_file = std::move(*v);
      continue;
    }
    if (auto v = option_value(args, i, "--admin", !c.admin_url.empty(), error)) {
      if (!error.empty()) return fail("prefetch: " + error);
      c.admin_url = std::move(*v);
      continue;
    }
    if (auto v = option_value(args, i, "--token-file", !c.token_file.empty(), error)) {
      if (!error.empty()) return fail("prefetch: " + error);
      c.token_file = std::move(*v);
      continue;
    }
    if (auto v = option_value(args, i, "--file", !c.ref_file.empty(), error)) {
      if (!error.empty()) return fail("prefetch: " + error);
      c.ref_file = std::move(*v);
      continue;
    }
    if (auto v = option_value(args, i, "--platform", !c.platform.empty(), error)) {
      if (!error.empty()) return fail("prefetch: " + error);
      c.platform = std::move(*v);
      continue;
    }
    if (!arg.starts_with("-") && !arg.empty()) {
      c.refs.emplace_back(arg);
      continue;
    }
    return fail("prefetch: unknown argument \"" + std::string(arg) +
                "\" (see pullthrough prefetch --help)");
  }
  if (c.refs.empty() && c.ref_file.empty()) {
    return fail(
        "prefetch: needs a REF (host/repository[:tag] or host/repository@digest) or "
        "--file LIST");
  }
  if (c.all_platforms && !c.platform.empty()) {
    return fail("prefetch: --platform and --all-platforms exclude each other");
  }
  if (!c.admin_url.empty() && !c.config_file.empty()) {
    return fail("prefetch: --admin and --config exclude each other");
  }
  return ok(c);
}

}  // namespace

std::string_view to_string(Role role) {
  switch (role) {
    case Role::all:
      return "all";
    case Role::dns:
      return "dns";
    case Role::proxy:
      return "proxy";
  }
  return "all";
}

ParsedCommandLine parse_command_line(const std::vector<std::string_view>& args) {
  if (args.empty()) return fail("no command given (see pullthrough --help)");
  std::string_view command = args[0];
  if (is_help_flag(command)) return ok(help_for(""));
  if (command == "help") {
    if (args.size() > 2) return fail("help: takes at most one command name");
    std::string_view topic = args.size() == 2 ? args[1] : "";
    if (!topic.empty() && topic != "serve" && topic != "check-config" && topic != "version" &&
        topic != "ca" && topic != "clients" && topic != "cache" && topic != "prefetch" &&
        topic != "help") {
      return fail("help: no command \"" + std::string(topic) + "\"");
    }
    return ok(help_for(topic == "help" ? "" : topic));
  }
  if (command == "serve") return parse_serve(args);
  if (command == "ca") return parse_ca(args);
  if (command == "clients") return parse_clients(args);
  if (command == "cache") return parse_cache(args);
  if (command == "prefetch") return parse_prefetch(args);
  if (command == "check-config") {
    Command c;
    c.kind = Command::Kind::check_config;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (is_help_flag(args[i])) return ok(help_for("check-config"));
    }
    if (args.size() != 2) return fail("check-config: needs exactly one FILE");
    if (args[1].empty()) return fail("check-config: the file name is empty");
    c.config_file = std::string(args[1]);
    return ok(c);
  }
  if (command == "version") {
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (is_help_flag(args[i])) return ok(help_for("version"));
    }
    if (args.size() != 1) return fail("version: takes no arguments");
    Command c;
    c.kind = Command::Kind::version;
    return ok(c);
  }
  return fail("unknown command \"" + std::string(command) + "\" (see pullthrough --help)");
}

std::string help_text(std::string_view topic) {
  if (topic == "serve") return std::string(kServe);
  if (topic == "check-config") return std::string(kCheckConfig);
  if (topic == "version") return std::string(kVersion);
  if (topic == "ca") return std::string(kCa);
  if (topic == "clients") return std::string(kClients);
  if (topic == "cache") return std::string(kCache);
  if (topic == "prefetch") return std::string(kPrefetch);
  return std::string(kOverview);
}

}  // namespace pullthrough::app
