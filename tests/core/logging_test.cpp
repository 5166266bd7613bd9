#include "core/logging.hpp"

#include <sstream>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace pullthrough::core {
namespace {

TEST(JsonEscapeTest, EscapesQuotesBackslashesAndControls) {
  std::string out;
  append_json_escaped(out, std::string("a\"b\\c\nd\te\x01") + '\x7f' + "\xc3\xa9");
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd\\te\\u0001\\u007f\xc3\xa9");
}

class LoggingTest : public ::testing::Test {
 protected:
  // The fixture's stream dies with it: put every logger back on stderr.
  void TearDown() override {
    configure_logging(spdlog::level::info, LogFormat::text,
                      std::make_shared<spdlog::sinks::stderr_sink_mt>());
  }
  std::ostringstream out_;
  spdlog::sink_ptr sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
};

TEST_F(LoggingTest, JsonFormatIsOneObjectPerLine) {
  configure_logging(spdlog::level::info, LogFormat::json, sink_);
  logger("dns")->info("listening on \"{}\"", "[::]:53");
  std::string line = out_.str();
  EXPECT_EQ(line.front(), '{');
  EXPECT_NE(line.find("\"level\":\"info\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"component\":\"dns\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"msg\":\"listening on \\\"[::]:53\\\"\"}"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST_F(LoggingTest, TextFormatNamesComponent) {
  configure_logging(spdlog::level::info, LogFormat::text, sink_);
  logger("proxy")->warn("disk low");
  EXPECT_NE(out_.str().find("[proxy] disk low"), std::string::npos) << out_.str();
}

TEST_F(LoggingTest, LevelAppliesToExistingAndNewLoggers) {
  auto existing = logger("certs");
  configure_logging(spdlog::level::warn, LogFormat::text, sink_);
  existing->info("hidden");
  logger("health-new")->info("hidden too");
  existing->error("shown");
  EXPECT_EQ(out_.str().find("hidden"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("shown"), std::string::npos);
}

TEST_F(LoggingTest, SameComponentSameLogger) { EXPECT_EQ(logger("app"), logger("app")); }

}  // namespace
}  // namespace pullthrough::core
