#pragma once

#include <string>

namespace pullthrough::app {

// "0.1.0 (abc1234)".
std::string version_string();
// The multi-line report of `pullthrough version`: our version and every library's.
std::string version_report();

}  // namespace pullthrough::app
