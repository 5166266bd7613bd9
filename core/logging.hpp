// Process-wide logging: one named spdlog logger per component ("app", "config", "dns", "proxy",
// "certs", "health", "admin"), all writing to one sink in one format.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/common.h>
#include <spdlog/logger.h>

namespace pullthrough::core {

enum class LogFormat { text, json };

// Applies to every logger, existing and future. Without a sink, logs go to stderr. Safe to call
// again (e.g. once with defaults before the configuration is read, then with its settings).
void configure_logging(spdlog::level::level_enum level, LogFormat format,
                       spdlog::sink_ptr sink = nullptr);

// The logger for a component, created on first use. The returned pointer stays valid for the life
// of the process; it is safe to keep and to use from any thread.
std::shared_ptr<spdlog::logger> logger(std::string_view component);

// JSON string escaping per RFC 8259 section 7 (quotation mark, backslash, control characters);
// bytes >= 0x80 pass through unchanged so UTF-8 stays readable.
void append_json_escaped(std::string& out, std::string_view text);

}  // namespace pullthrough::core
