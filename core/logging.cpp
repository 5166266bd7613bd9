#include "core/logging.hpp"

#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace pullthrough::core {
namespace {

// %* in a pattern: the message, escaped for a JSON string.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string escaped;
    append_json_escaped(escaped, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

struct LoggingState {
  std::mutex mutex;
  spdlog::sink_ptr sink;
};

LoggingState& state() {
  static LoggingState instance;
  return instance;
}

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format) {
  if (format == LogFormat::json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","component":"%n","msg":"%*"})");
    return formatter;
  }
  return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
}

}  // namespace

void configure_logging(spdlog::level::level_enum level, LogFormat format, spdlog::sink_ptr sink) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  if (sink) {
    s.sink = std::move(sink);
  } else if (!s.sink) {
    s.sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  s.sink->set_level(spdlog::level::trace);
  spdlog::apply_all(
      [&](const std::shared_ptr<spdlog::logger>& existing) { existing->sinks().assign({s.sink}); });
  spdlog::set_formatter(make_formatter(format));
  spdlog::set_level(level);
}

std::shared_ptr<spdlog::logger> logger(std::string_view component) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  std::string name(component);
  if (auto existing = spdlog::get(name)) return existing;
  if (!s.sink) s.sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto created = std::make_shared<spdlog::logger>(name, s.sink);
  // Takes the registry's current level and formatter, and registers the logger by name.
  spdlog::initialize_logger(created);
  return created;
}

void append_json_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (byte < 0x20 || byte == 0x7F) {
          out += "\\u00";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xF];
        } else {
          out += c;
        }
    }
  }
}

}  // namespace pullthrough::core
