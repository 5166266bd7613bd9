// app/: the program: main() and the command line (cli.hpp), the CA commands, the admin pages,
// and `serve`, which wires the services of a role (this file), composes their /metrics
// (metrics.hpp) and hands them to the supervisor (supervisor.hpp).
//
// `pullthrough serve`: builds the services for a role, runs them on a thread pool and drains them
// on SIGINT/SIGTERM.
#pragma once

#include <chrono>
#include <string>

#include "app/cli.hpp"
#include "config/config.hpp"

namespace pullthrough::app {

struct ServeOptions {
  config::Config config;
  std::string config_name;  // the file, or the embedded default's name, for the log
  Role role = Role::all;
  // After the stop signal, how long in-flight work may take before it is abandoned.
  std::chrono::milliseconds drain_deadline = std::chrono::seconds(10);
};

// Blocks until the process is told to stop. Returns the exit status: 0 after a clean stop (even one
// that hit the drain deadline, which is logged), 1 when start-up fails, 2 for a configuration
// problem only visible at start (such as an upstream resolver that is this appliance itself).
int serve(const ServeOptions& options);

}  // namespace pullthrough::app
