// config/pullthrough.yaml, compiled in so that `pullthrough serve` runs without a file.
#pragma once

#include <string_view>

namespace pullthrough::config {

std::string_view embedded_default_yaml();
// The name used for the embedded file in error messages and logs.
inline constexpr std::string_view kEmbeddedName = "<embedded config/pullthrough.yaml>";

}  // namespace pullthrough::config
