#include "app/cli.hpp"

#include "core/asio.hpp"

#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "app/admin_client.hpp"
#include "app/clients_command.hpp"
#include "app/prefetch_command.hpp"

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

namespace pullthrough::app {
namespace {

TEST(CommandLineTest, ClientsLsAddRm) {
  auto ls = parse_command_line({"clients", "ls", "--json", "--config", "a.yaml"});
  ASSERT_TRUE(ls.command) << ls.error;
  EXPECT_EQ(ls.command->kind, Command::Kind::clients_ls);
  EXPECT_TRUE(ls.command->json);
  EXPECT_EQ(ls.command->config_file, "a.yaml");
  auto add = parse_command_line({"clients", "add", "192.168.1.7", "--config=b.yaml"});
  ASSERT_TRUE(add.command) << add.error;
  EXPECT_EQ(add.command->kind, Command::Kind::clients_add);
  EXPECT_EQ(add.command->client, "192.168.1.7");
  EXPECT_EQ(add.command->config_file, "b.yaml");
  auto rm = parse_command_line({"clients", "rm", "fd00::7"});
  ASSERT_TRUE(rm.command) << rm.error;
  EXPECT_EQ(rm.command->kind, Command::Kind::clients_rm);
  EXPECT_EQ(rm.command->client, "fd00::7");
}

TEST(CommandLineTest, ClientsRejectsBadArguments) {
  using ::testing::HasSubstr;
  EXPECT_THAT(parse_command_line({"clients"}).error, HasSubstr("needs a subcommand"));
  EXPECT_THAT(parse_command_line({"clients", "list"}).error, HasSubstr("unknown subcommand"));
  EXPECT_THAT(parse_command_line({"clients", "add"}).error, HasSubstr("needs the client's IP"));
  EXPECT_THAT(parse_command_line({"clients", "rm", "a", "b"}).error, HasSubstr("unknown argument"));
  EXPECT_THAT(parse_command_line({"clients", "add", "a", "--json"}).error,
              HasSubstr("unknown argument"));
  EXPECT_THAT(parse_command_line({"clients", "ls", "10.0.0.1"}).error,
              HasSubstr("unknown argument"));
  EXPECT_THAT(parse_command_line({"clients", "ls", "--config"}).error, HasSubstr("needs a value"));
  EXPECT_EQ(parse_command_line({"clients", "rm", "--help"}).command->help_topic, "clients");
  EXPECT_EQ(parse_command_line({"help", "clients"}).command->help_topic, "clients");
  EXPECT_THAT(help_text("clients"), HasSubstr("Usage: pullthrough clients ls"));
  EXPECT_THAT(help_text(""), HasSubstr("pullthrough clients add|rm ADDRESS"));
}

TEST(CommandLineTest, CacheSubcommandsAndTheirOptions) {
  auto ls = parse_command_line({"cache", "ls", "quay.io/**", "--json", "--config", "a.yaml"});
  ASSERT_TRUE(ls.command) << ls.error;
  EXPECT_EQ(ls.command->kind, Command::Kind::cache_ls);
  EXPECT_EQ(ls.command->ref, "quay.io/**");
  EXPECT_TRUE(ls.command->json);
  EXPECT_EQ(ls.command->config_file, "a.yaml");
  auto gc = parse_command_line({"cache", "gc", "--dry-run", "--admin=http://127.0.0.1:9091"});
  ASSERT_TRUE(gc.command) << gc.error;
  EXPECT_EQ(gc.command->kind, Command::Kind::cache_gc);
  EXPECT_TRUE(gc.command->dry_run);
  EXPECT_EQ(gc.command->admin_url, "http://127.0.0.1:9091");
  auto rm = parse_command_line({"cache", "rm", "quay.io/org/app:v1", "--token-file", "t"});
  ASSERT_TRUE(rm.command) << rm.error;
  EXPECT_EQ(rm.command->kind, Command::Kind::cache_rm);
  EXPECT_EQ(rm.command->ref, "quay.io/org/app:v1");
  EXPECT_EQ(rm.command->token_file, "t");
  EXPECT_EQ(parse_command_line({"cache", "pin", "quay.io/a@sha256:x"}).command->kind,
            Command::Kind::cache_pin);
  EXPECT_EQ(parse_command_line({"cache", "unpin", "x"}).command->kind, Command::Kind::cache_unpin);
  EXPECT_EQ(parse_command_line({"cache", "du"}).command->kind, Command::Kind::cache_du);
  EXPECT_EQ(parse_command_line({"cache", "pins", "--json"}).command->kind,
            Command::Kind::cache_pins);
}

TEST(CommandLineTest, CacheRejectsBadArguments) {
  using ::testing::HasSubstr;
  EXPECT_THAT(parse_command_line({"cache"}).error, HasSubstr("needs a subcommand"));
  EXPECT_THAT(parse_command_line({"cache", "prune"}).error, HasSubstr("unknown subcommand"));
  EXPECT_THAT(parse_command_line({"cache", "rm"}).error, HasSubstr("needs a REF"));
  EXPECT_THAT(parse_command_line({"cache", "pin"}).error, HasSubstr("needs a REF"));
  EXPECT_THAT(parse_command_line({"cache", "du", "x"}).error, HasSubstr("unknown argument"));
  EXPECT_THAT(parse_command_line({"cache", "pin", "x", "--json"}).error,
              HasSubstr("unknown argument"));
  EXPECT_THAT(parse_command_line({"cache", "ls", "--dry-run"}).error,
              HasSubstr("unknown argument"));
  EXPECT_THAT(parse_command_line({"cache", "ls", "a", "b"}).error, HasSubstr("unknown argument"));
  EXPECT_THAT(parse_command_line({"cache", "gc", "--admin"}).error, HasSubstr("needs a value"));
  EXPECT_THAT(parse_command_line({"cache", "gc", "--admin", "a", "--admin", "b"}).error,
              HasSubstr("given twice"));
  EXPECT_THAT(parse_command_line({"cache", "gc", "--admin", "a", "--config", "b"}).error,
              HasSubstr("exclude each other"));
  EXPECT_EQ(parse_command_line({"cache", "gc", "--help"}).command->help_topic, "cache");
  EXPECT_EQ(parse_command_line({"help", "cache"}).command->help_topic, "cache");
  EXPECT_THAT(help_text("cache"), HasSubstr("Usage: pullthrough cache ls [GLOB] [--json]"));
  EXPECT_THAT(help_text(""), HasSubstr("pullthrough cache rm REF"));
}

TEST(CommandLineTest, PrefetchTakesReferencesAFileAndAPlatform) {
  using ::testing::HasSubstr;
  auto p = parse_command_line({"prefetch", "quay.io/a:1", "ghcr.io/b@sha256:x", "--file", "l",
                               "--platform", "linux/arm64", "--config", "c.yaml"});
  ASSERT_TRUE(p.command) << p.error;
  EXPECT_EQ(p.command->kind, Command::Kind::prefetch);
  EXPECT_EQ(p.command->refs, (std::vector<std::string>{"quay.io/a:1", "ghcr.io/b@sha256:x"}));
  EXPECT_EQ(p.command->ref_file, "l");
  EXPECT_EQ(p.command->platform, "linux/arm64");
  EXPECT_TRUE(
      parse_command_line({"prefetch", "--file=l", "--all-platforms"}).command->all_platforms);
  EXPECT_THAT(parse_command_line({"prefetch"}).error, HasSubstr("needs a REF"));
  EXPECT_THAT(parse_command_line({"prefetch", "a", "--platform", "x", "--all-platforms"}).error,
              HasSubstr("exclude each other"));
  EXPECT_THAT(parse_command_line({"prefetch", "a", "--json"}).error, HasSubstr("unknown argument"));
  EXPECT_EQ(parse_command_line({"help", "prefetch"}).command->help_topic, "prefetch");
  EXPECT_THAT(help_text("prefetch"), HasSubstr("--all-platforms"));
}

TEST(PrefetchDisplayTest, PlainOutputReportsEachLayerOnceAndTheSummaryNamesFailures) {
  const std::string a = "sha256:" + std::string(64, 'a');
  const std::string b = "sha256:" + std::string(64, 'b');
  auto answer = [&](const std::string& b_state, const std::string& ref_state, bool done) {
    return R"({"id":1,"done":)" + std::string(done ? "true" : "false") +
           R"(,"refs":[{"ref":"quay.io/x:1","state":")" + ref_state + R"(","digest":")" + a +
           R"(","platforms":[],"blobs":[
             {"digest":")" +
           a + R"(","size":10,"fetched":10,"state":"cached"},
             {"digest":")" +
           b + R"(","size":2048,"fetched":1024,"state":")" + b_state +
           R"("}]},{"ref":"quay.io/y:1","state":"failed","error":"no such tag","digest":"",
             "platforms":[],"blobs":[]}]})";
  };
  PrefetchDisplay plain(false);
  auto first = plain.update(answer("fetching", "fetching", false), 0.5);
  EXPECT_THAT(first, ::testing::HasSubstr("quay.io/x:1 sha256:aaaaaaaaaaaa 10 B cached\n"));
  EXPECT_THAT(first, ::testing::Not(::testing::HasSubstr("sha256:bbbb")));
  EXPECT_THAT(first, ::testing::HasSubstr("quay.io/y:1 failed: no such tag\n"));
  auto second = plain.update(answer("fetched", "done", true), 1.0);
  EXPECT_EQ(second,
            "quay.io/x:1 sha256:bbbbbbbbbbbb 2.0 KiB fetched\nquay.io/x:1 done "
            "(sha256:aaaaaaaaaaaa)\n");
  auto summary = plain.summary(answer("fetched", "done", true));
  EXPECT_THAT(summary, ::testing::HasSubstr("1 of 2 references prefetched: 2.0 KiB fetched, "
                                            "10 B already cached"));
  EXPECT_THAT(summary, ::testing::HasSubstr("failed:\n  quay.io/y:1: no such tag\n"));

  PrefetchDisplay terminal(true);
  auto drawn = terminal.update(answer("fetching", "fetching", false), 0.5);
  EXPECT_THAT(drawn, ::testing::HasSubstr("1.0 KiB / 2.0 KiB"));
  EXPECT_THAT(drawn, ::testing::HasSubstr("total "));
  auto redrawn = terminal.update(answer("fetching", "fetching", false), 1.5);
  // Drawn over the previous display: the cursor goes back up its lines first.
  EXPECT_EQ(redrawn.rfind("\x1b[" + std::to_string(terminal.lines_drawn()) + "A", 0), 0U);
}

TEST(ClientsCommandTest, TheListReadsAsATable) {
  auto text = format_clients(R"({
    "intercept": "enrolled", "untrusted_bypass": "1h", "intercepted_last_hour": 3,
    "enrolled": [{"address": "192.168.1.7", "since": "2027-01-15T08:00:00.000Z", "via": "enroll"}],
    "bypassed": [{"address": "192.168.1.9", "since": "2027-01-15T08:10:00.000Z",
                  "until": "2027-01-15T09:10:00.000Z", "alert": "bad_certificate"}]})");
  EXPECT_THAT(text, ::testing::HasSubstr("intercept: enrolled; untrusted_bypass: 1h; clients "
                                         "handed a cache's address in the last hour: 3\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("\n1 enrolled\n"));
  EXPECT_THAT(
      text, ::testing::ContainsRegex("\n192\\.168\\.1\\.7 +2027-01-15T08:00:00\\.000Z +enroll\n"));
  EXPECT_THAT(text,
              ::testing::ContainsRegex(
                  "\n192\\.168\\.1\\.9 +2027-01-15T08:10:00\\.000Z +2027-01-15T09:10:00\\.000Z "
                  "+bad_certificate\n"));
  EXPECT_THROW(format_clients("{}"), std::exception);
  EXPECT_THROW(format_clients("not json"), std::exception);
}

TEST(ClientsCommandTest, AWildcardAdminListenIsReachedOnLoopback) {
  config::Config config;
  config.admin.listen = *core::parse_endpoint("0.0.0.0:9090");
  EXPECT_EQ(admin_endpoint(config).to_string(), "127.0.0.1:9090");
  config.admin.listen = *core::parse_endpoint("[::]:9091");
  EXPECT_EQ(admin_endpoint(config).to_string(), "[::1]:9091");
  config.admin.listen = *core::parse_endpoint("192.0.2.1:9090");
  EXPECT_EQ(admin_endpoint(config).to_string(), "192.0.2.1:9090");
}

TEST(ClientsCommandTest, AnApplianceNotRunningIsSaidSo) {
  // A port nothing listens on: bind one, note it, close it.
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto port = acceptor.local_endpoint().port();
  acceptor.close();
  config::Config config;
  config.admin.listen = core::Endpoint{asio::ip::make_address("127.0.0.1"), port};
  Command ls;
  ls.kind = Command::Kind::clients_ls;
  std::ostringstream out, err;
  EXPECT_EQ(clients_command(config, ls, out, err), 1);
  EXPECT_THAT(err.str(), ::testing::HasSubstr("cannot be reached"));
  Command bad;
  bad.kind = Command::Kind::clients_add;
  bad.client = "not-an-address";
  EXPECT_EQ(clients_command(config, bad, out, err), 2);
  EXPECT_THAT(err.str(), ::testing::HasSubstr("not an IP address"));
}

}  // namespace
}  // namespace pullthrough::app
