// Entry point: parse the command line, load the configuration, set up logging, dispatch.
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/appliance.hpp"
#include "app/ca_commands.hpp"
#include "app/cache_command.hpp"
#include "app/cli.hpp"
#include "app/clients_command.hpp"
#include "app/prefetch_command.hpp"
#include "app/version.hpp"
#include "config/embedded.hpp"
#include "config/loader.hpp"
#include "core/logging.hpp"

namespace {

using pullthrough::app::Command;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

void print_errors(const std::vector<pullthrough::config::ConfigError>& errors) {
  for (const auto& error : errors) std::cerr << error.to_string() << "\n";
}

void print_warnings(const std::vector<pullthrough::config::ConfigError>& warnings) {
  for (const auto& warning : warnings) std::cerr << "warning: " << warning.to_string() << "\n";
}

int check_config(const std::string& file) {
  auto loaded = pullthrough::config::load_file(file);
  if (!loaded.config) {
    print_errors(loaded.errors);
    std::cerr << file << ": " << loaded.errors.size() << " error"
              << (loaded.errors.size() == 1 ? "" : "s") << "\n";
    return kExitUsage;
  }
  print_warnings(loaded.warnings);
  std::cout << file << ": ok\n";
  return 0;
}

// The configuration a command names, or the built-in one; prints the errors when it is invalid.
pullthrough::config::LoadResult load_config(const std::string& file) {
  auto loaded = file.empty()
                    ? pullthrough::config::load_string(pullthrough::config::embedded_default_yaml(),
                                                       pullthrough::config::kEmbeddedName)
                    : pullthrough::config::load_file(file);
  if (!loaded.config) print_errors(loaded.errors);
  return loaded;
}

int serve(const Command& command) {
  // Start-up messages before the configuration is read use the default format.
  pullthrough::core::configure_logging(spdlog::level::info, pullthrough::core::LogFormat::text);
  pullthrough::app::ServeOptions options;
  auto loaded = load_config(command.config_file);
  if (!loaded.config) return kExitUsage;
  options.config = std::move(*loaded.config);
  options.config_name = command.config_file.empty()
                            ? std::string(pullthrough::config::kEmbeddedName)
                            : command.config_file;
  options.role = command.role;
  pullthrough::core::configure_logging(options.config.log.level, options.config.log.format);
  for (const auto& warning : loaded.warnings) {
    pullthrough::core::logger("config")->warn("{}", warning.to_string());
  }
  return pullthrough::app::serve(options);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto parsed = pullthrough::app::parse_command_line(args);
  if (!parsed.command) {
    std::cerr << "pullthrough: " << parsed.error << "\n";
    return kExitUsage;
  }
  const Command& command = *parsed.command;
  try {
    switch (command.kind) {
      case Command::Kind::help:
        std::cout << pullthrough::app::help_text(command.help_topic);
        return 0;
      case Command::Kind::version:
        std::cout << pullthrough::app::version_report();
        return 0;
      case Command::Kind::check_config:
        return check_config(command.config_file);
      case Command::Kind::serve:
        return serve(command);
      case Command::Kind::ca_export:
      case Command::Kind::ca_info: {
        auto loaded = load_config(command.config_file);
        if (!loaded.config) return kExitUsage;
        return command.kind == Command::Kind::ca_export
                   ? pullthrough::app::ca_export(*loaded.config, command.der, std::cout, std::cerr)
                   : pullthrough::app::ca_info(*loaded.config, std::cout, std::cerr);
      }
      case Command::Kind::clients_ls:
      case Command::Kind::clients_add:
      case Command::Kind::clients_rm: {
        auto loaded = load_config(command.config_file);
        if (!loaded.config) return kExitUsage;
        return pullthrough::app::clients_command(*loaded.config, command, std::cout, std::cerr);
      }
      case Command::Kind::cache_ls:
      case Command::Kind::cache_du:
      case Command::Kind::cache_gc:
      case Command::Kind::cache_rm:
      case Command::Kind::cache_pin:
      case Command::Kind::cache_unpin:
      case Command::Kind::cache_pins: {
        auto loaded = load_config(command.config_file);
        if (!loaded.config) return kExitUsage;
        return pullthrough::app::cache_command(*loaded.config, command, std::cout, std::cerr);
      }
      case Command::Kind::prefetch: {
        auto loaded = load_config(command.config_file);
        if (!loaded.config) return kExitUsage;
        return pullthrough::app::prefetch_command(*loaded.config, command, std::cout, std::cerr);
      }
    }
  } catch (const std::exception& e) {
    // Only start-up and shutdown code can get here; the services catch their own errors.
    std::cerr << "pullthrough: fatal: " << e.what() << "\n";
    return kExitFailure;
  }
  return kExitFailure;
}
