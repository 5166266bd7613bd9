#include "app/cli.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pullthrough::app {
namespace {

using ::testing::HasSubstr;

ParsedCommandLine parse(std::vector<std::string_view> args) { return parse_command_line(args); }

TEST(CommandLineTest, ServeDefaults) {
  auto p = parse({"serve"});
  ASSERT_TRUE(p.command);
  EXPECT_EQ(p.command->kind, Command::Kind::serve);
  EXPECT_EQ(p.command->config_file, "");
  EXPECT_EQ(p.command->role, Role::all);
}

TEST(CommandLineTest, ServeWithConfigAndRole) {
  auto p = parse({"serve", "--config", "a.yaml", "--role", "dns"});
  ASSERT_TRUE(p.command);
  EXPECT_EQ(p.command->config_file, "a.yaml");
  EXPECT_EQ(p.command->role, Role::dns);
  auto q = parse({"serve", "--role=proxy", "--config=b.yaml"});
  ASSERT_TRUE(q.command);
  EXPECT_EQ(q.command->config_file, "b.yaml");
  EXPECT_EQ(q.command->role, Role::proxy);
}

TEST(CommandLineTest, ServeRejectsBadArguments) {
  EXPECT_THAT(parse({"serve", "--role", "cache"}).error, HasSubstr("all, dns or proxy"));
  EXPECT_THAT(parse({"serve", "--config"}).error, HasSubstr("needs a value"));
  EXPECT_THAT(parse({"serve", "--verbose"}).error, HasSubstr("unknown argument"));
  EXPECT_THAT(parse({"serve", "--role", "dns", "--role", "all"}).error, HasSubstr("twice"));
  EXPECT_THAT(parse({"serve", "--config="}).error, HasSubstr("needs a file name"));
}

TEST(CommandLineTest, CheckConfigNeedsOneFile) {
  auto p = parse({"check-config", "x.yaml"});
  ASSERT_TRUE(p.command);
  EXPECT_EQ(p.command->kind, Command::Kind::check_config);
  EXPECT_EQ(p.command->config_file, "x.yaml");
  EXPECT_FALSE(parse({"check-config"}).command);
  EXPECT_FALSE(parse({"check-config", "a", "b"}).command);
}

TEST(CommandLineTest, HelpOnEveryCommand) {
  for (std::string_view command : {"serve", "check-config", "version"}) {
    auto p = parse({command, "--help"});
    ASSERT_TRUE(p.command) << command;
    EXPECT_EQ(p.command->kind, Command::Kind::help);
    EXPECT_EQ(p.command->help_topic, command);
    EXPECT_THAT(help_text(command), HasSubstr("Usage: pullthrough " + std::string(command)));
  }
  EXPECT_EQ(parse({"--help"}).command->help_topic, "");
  EXPECT_EQ(parse({"help", "serve"}).command->help_topic, "serve");
  EXPECT_THAT(help_text(""), HasSubstr("pullthrough check-config FILE"));
}

TEST(CommandLineTest, UnknownCommandsAndArguments) {
  EXPECT_THAT(parse({}).error, HasSubstr("no command"));
  EXPECT_THAT(parse({"start"}).error, HasSubstr("unknown command \"start\""));
  EXPECT_THAT(parse({"help", "start"}).error, HasSubstr("no command \"start\""));
  EXPECT_THAT(parse({"version", "x"}).error, HasSubstr("takes no arguments"));
}

}  // namespace
}  // namespace pullthrough::app

namespace pullthrough::app {
namespace {

TEST(CommandLineTest, CaExportAndInfo) {
  auto e = parse_command_line({"ca", "export", "--der", "--config", "a.yaml"});
  ASSERT_TRUE(e.command) << e.error;
  EXPECT_EQ(e.command->kind, Command::Kind::ca_export);
  EXPECT_TRUE(e.command->der);
  EXPECT_EQ(e.command->config_file, "a.yaml");
  auto i = parse_command_line({"ca", "info", "--config=b.yaml"});
  ASSERT_TRUE(i.command) << i.error;
  EXPECT_EQ(i.command->kind, Command::Kind::ca_info);
  EXPECT_EQ(i.command->config_file, "b.yaml");
  EXPECT_FALSE(i.command->der);
}

TEST(CommandLineTest, CaRejectsBadArguments) {
  EXPECT_THAT(parse_command_line({"ca"}).error, ::testing::HasSubstr("needs a subcommand"));
  EXPECT_THAT(parse_command_line({"ca", "import"}).error,
              ::testing::HasSubstr("unknown subcommand"));
  EXPECT_THAT(parse_command_line({"ca", "info", "--der"}).error,
              ::testing::HasSubstr("unknown argument"));
  EXPECT_EQ(parse_command_line({"ca", "export", "--help"}).command->help_topic, "ca");
  EXPECT_THAT(help_text("ca"), ::testing::HasSubstr("Usage: pullthrough ca export"));
}

}  // namespace
}  // namespace pullthrough::app
