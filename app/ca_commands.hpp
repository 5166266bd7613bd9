// `pullthrough ca export` and `pullthrough ca info`.
#pragma once

#include <iosfwd>

#include "config/config.hpp"

namespace pullthrough::app {

// Writes the CA certificate to `out`; returns the exit status.
int ca_export(const config::Config& config, bool der, std::ostream& out, std::ostream& err);
// Describes the CA and the leaves issued; returns the exit status.
int ca_info(const config::Config& config, std::ostream& out, std::ostream& err);

}  // namespace pullthrough::app
