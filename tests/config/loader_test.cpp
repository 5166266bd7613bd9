#include "config/loader.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/embedded.hpp"

namespace pullthrough::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

Config load_ok(const std::string& yaml) {
  auto result = load_string(yaml, "t.yaml");
  std::string errors;
  for (const auto& e : result.errors) errors += e.to_string() + "\n";
  EXPECT_TRUE(result.config) << errors;
  return result.config.value_or(Config{});
}

std::vector<ConfigError> load_errors(const std::string& yaml) {
  auto result = load_string(yaml, "t.yaml");
  EXPECT_FALSE(result.config);
  return result.errors;
}

// The single error of a file that must have exactly one.
ConfigError one_error(const std::string& yaml) {
  auto errors = load_errors(yaml);
  if (errors.size() != 1) {
    ADD_FAILURE() << "expected exactly one error, got " << errors.size();
    for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  }
  return errors.empty() ? ConfigError{} : errors.front();
}

TEST(ConfigDefaultsTest, EmptyFileYieldsDefaults) {
  EXPECT_EQ(load_ok(""), defaults());
  EXPECT_EQ(load_ok("# only a comment\n"), defaults());
}

TEST(ConfigDefaultsTest, DefaultValuesMatchTheSchema) {
  Config c = defaults();
  EXPECT_EQ(c.state_dir, "./var");
  EXPECT_EQ(c.log.level, spdlog::level::info);
  EXPECT_EQ(c.log.format, core::LogFormat::text);
  EXPECT_TRUE(c.appliance.auto_addresses);
  EXPECT_TRUE(c.appliance.addresses.empty());
  ASSERT_EQ(c.dns.listen.size(), 2U);
  EXPECT_EQ(c.dns.listen[0].to_string(), "0.0.0.0:53");
  EXPECT_EQ(c.dns.listen[1].to_string(), "[::]:53");
  EXPECT_TRUE(c.dns.system_upstreams);
  EXPECT_TRUE(c.dns.upstreams.empty());
  EXPECT_EQ(c.dns.answer_ttl, seconds(10));
  EXPECT_EQ(c.dns.upstream_timeout, seconds(2));
  EXPECT_EQ(c.dns.cache.max_entries, 100000U);
  EXPECT_EQ(c.dns.cache.serve_stale, seconds(30));
  EXPECT_EQ(c.dns.allow, core::private_networks());
  EXPECT_EQ(c.dns.per_client_qps, 2000U);
  EXPECT_TRUE(c.dns.self_cache_host);
  EXPECT_TRUE(c.dns.cache_hosts.empty());
  ASSERT_EQ(c.proxy.listen.size(), 2U);
  EXPECT_EQ(c.proxy.listen[0].to_string(), "0.0.0.0:443");
  EXPECT_EQ(c.proxy.listen[1].to_string(), "[::]:443");
  ASSERT_EQ(c.proxy.http_listen.size(), 1U);
  EXPECT_EQ(c.proxy.http_listen[0].to_string(), "0.0.0.0:80");
  EXPECT_EQ(c.proxy.allow, core::private_networks());
  EXPECT_FALSE(c.proxy.handover.has_value());
  EXPECT_EQ(c.proxy.request_timeout, seconds(60));
  EXPECT_EQ(c.proxy.write_timeout, seconds(60));
  EXPECT_EQ(c.proxy.max_connections, 4096U);
  EXPECT_EQ(c.proxy.max_connections_per_client, 256U);
  EXPECT_EQ(handover_or_auto(c), seconds(12));  // answer_ttl 10s + interval 1s + timeout 1s
  EXPECT_EQ(c.admin.listen.to_string(), "127.0.0.1:9090");
  ASSERT_EQ(c.registries.size(), 7U);
  EXPECT_EQ(c.registries[0].host, "registry-1.docker.io");
  EXPECT_EQ(c.registries[0].aliases, (std::vector<std::string>{"docker.io", "index.docker.io"}));
  EXPECT_EQ(c.registries[0].upstream.to_string(), "https://registry-1.docker.io");
  EXPECT_EQ(c.registries[0].manifest_ttl, minutes(5));
  std::vector<std::string> hosts;
  for (const auto& r : c.registries) hosts.push_back(r.host);
  EXPECT_EQ(hosts,
            (std::vector<std::string>{"registry-1.docker.io", "quay.io", "ghcr.io", "gcr.io",
                                      "registry.k8s.io", "public.ecr.aws", "mcr.microsoft.com"}));
  EXPECT_EQ(c.registries[6].upstream.to_string(), "https://mcr.microsoft.com");
  for (const auto& r : c.registries) {
    EXPECT_EQ(r.push, PushMode::passthrough) << r.host;
    EXPECT_FALSE(r.share_private) << r.host;
  }
  EXPECT_EQ(c.storage.path, "./var/cache");
  EXPECT_EQ(c.storage.max_size, 0U);
  EXPECT_EQ(c.storage.min_free, 1ULL << 30);
  EXPECT_TRUE(c.ca.cert_file.empty());
  EXPECT_TRUE(c.ca.key_file.empty());
  EXPECT_EQ(c.health.interval, seconds(1));
  EXPECT_EQ(c.health.timeout, seconds(1));
  EXPECT_EQ(c.health.fall, 2U);
  EXPECT_EQ(c.health.rise, 2U);
}

TEST(ConfigDefaultsTest, ShippedFileEqualsBuiltInDefaults) {
  auto result = load_file(std::string(PULLTHROUGH_SOURCE_DIR) + "/config/pullthrough.yaml");
  ASSERT_TRUE(result.config) << (result.errors.empty() ? "" : result.errors[0].to_string());
  EXPECT_EQ(*result.config, defaults());
}

TEST(ConfigDefaultsTest, EmbeddedFileIsTheShippedFile) {
  auto result = load_string(embedded_default_yaml(), kEmbeddedName);
  ASSERT_TRUE(result.config);
  EXPECT_EQ(*result.config, defaults());
  EXPECT_THAT(std::string(embedded_default_yaml()), HasSubstr("registry-1.docker.io"));
}

TEST(ConfigErrorTest, FormatsFileLineColumnKey) {
  ConfigError e{"pullthrough.yaml", 12, 5, "dns.answer_ttl", "expected a duration"};
  EXPECT_EQ(e.to_string(), "pullthrough.yaml:12:5: dns.answer_ttl: expected a duration");
  ConfigError no_position{"x.yaml", 0, 0, "", "cannot open the file"};
  EXPECT_EQ(no_position.to_string(), "x.yaml: cannot open the file");
}

TEST(ConfigLoaderTest, BadDurationNamesLineColumnAndKey) {
  auto e = one_error("dns:\n  answer_ttl: 10x\n");
  EXPECT_EQ(e.to_string(),
            "t.yaml:2:15: dns.answer_ttl: expected a duration like \"10s\", \"500ms\", \"5m\" or "
            "\"30d\", got \"10x\"");
}

TEST(ConfigLoaderTest, UnknownKeyIsAnErrorAtItsLine) {
  auto e = one_error("dns:\n  anwser_ttl: 10s\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 3);
  EXPECT_EQ(e.key, "dns.anwser_ttl");
  EXPECT_EQ(e.message, "unknown key");
}

TEST(ConfigLoaderTest, UnknownTopLevelAndNestedKeys) {
  auto errors = load_errors("colour: red\nhealth:\n  fall: 2\n  rice: 3\n");
  ASSERT_EQ(errors.size(), 2U);
  EXPECT_EQ(errors[0].key, "colour");
  EXPECT_EQ(errors[1].key, "health.rice");
  EXPECT_EQ(errors[1].line, 4);
}

TEST(ConfigLoaderTest, ReportsEveryErrorSortedByLine) {
  auto errors = load_errors(
      "dns:\n"
      "  upstream_timeout: soon\n"
      "  allow: [10.0.0.1/8]\n"
      "  bogus: 1\n");
  ASSERT_EQ(errors.size(), 3U);
  EXPECT_EQ(errors[0].line, 2);
  EXPECT_EQ(errors[0].key, "dns.upstream_timeout");
  EXPECT_EQ(errors[1].line, 3);
  EXPECT_EQ(errors[1].key, "dns.allow[0]");
  EXPECT_THAT(errors[1].message, HasSubstr("host bits zero"));
  EXPECT_EQ(errors[2].line, 4);
  EXPECT_EQ(errors[2].key, "dns.bogus");
}

TEST(ConfigLoaderTest, SyntaxErrorHasPosition) {
  auto e = one_error("dns:\n  listen: [\"0.0.0.0:53\"\n");
  EXPECT_GT(e.line, 0);
  EXPECT_THAT(e.message, HasSubstr("YAML syntax error"));
}

TEST(ConfigLoaderTest, DuplicateKeyIsAnError) {
  auto e = one_error("log:\n  level: info\n  level: debug\n");
  EXPECT_EQ(e.key, "log.level");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.message, "duplicate key");
}

TEST(ConfigLoaderTest, WrongShapesAreNamed) {
  EXPECT_THAT(one_error("- a\n- b\n").message, HasSubstr("expected a mapping, got a list"));
  EXPECT_THAT(one_error("dns: 5\n").message, HasSubstr("expected a mapping, got \"5\""));
  EXPECT_THAT(one_error("dns:\n  listen: \"0.0.0.0:53\"\n").message, HasSubstr("expected a list"));
  EXPECT_THAT(one_error("state_dir: [a]\n").message, HasSubstr("expected a string, got a list"));
}

TEST(ConfigLoaderTest, EmptySectionsKeepDefaults) {
  EXPECT_EQ(load_ok("dns:\nproxy: {}\nhealth:\n"), defaults());
}

TEST(ConfigLoaderTest, ReadsEveryScalarField) {
  Config c = load_ok(
      "state_dir: /srv/pt\n"
      "log: {level: debug, format: json}\n"
      "appliance: {addresses: [192.0.2.10, \"2001:db8::10\"]}\n"
      "dns:\n"
      "  listen: [\"127.0.0.1:5353\"]\n"
      "  upstreams: [\"192.0.2.53\", \"192.0.2.54:5300\", \"[2001:db8::53]:53\"]\n"
      "  answer_ttl: 0s\n"
      "  upstream_timeout: 500ms\n"
      "  cache: {max_entries: 10, serve_stale: 0}\n"
      "  allow: [\"192.0.2.0/24\", private]\n"
      "  rate_limit: {per_client_qps: 0}\n"
      "  cache_hosts: [192.0.2.10, self]\n"
      "proxy:\n"
      "  listen: [\"127.0.0.1:8443\"]\n"
      "  http_listen: []\n"
      "  allow: [\"0.0.0.0/0\", \"::/0\"]\n"
      "admin: {listen: \"[::1]:9091\"}\n"
      "storage: {path: /data/cache, max_size: 100GiB, min_free: 512MiB}\n"
      "ca: {cert_file: /etc/pt/ca.pem, key_file: /etc/pt/ca.key}\n"
      "health: {interval: 2s, timeout: 500ms, fall: 3, rise: 4}\n");
  EXPECT_EQ(c.state_dir, "/srv/pt");
  EXPECT_EQ(c.log.level, spdlog::level::debug);
  EXPECT_EQ(c.log.format, core::LogFormat::json);
  EXPECT_FALSE(c.appliance.auto_addresses);
  ASSERT_EQ(c.appliance.addresses.size(), 2U);
  EXPECT_EQ(c.appliance.addresses[1].to_string(), "2001:db8::10");
  EXPECT_EQ(c.dns.listen[0].to_string(), "127.0.0.1:5353");
  EXPECT_FALSE(c.dns.system_upstreams);
  ASSERT_EQ(c.dns.upstreams.size(), 3U);
  EXPECT_EQ(c.dns.upstreams[0].to_string(), "192.0.2.53:53");
  EXPECT_EQ(c.dns.upstreams[1].to_string(), "192.0.2.54:5300");
  EXPECT_EQ(c.dns.upstreams[2].to_string(), "[2001:db8::53]:53");
  EXPECT_EQ(c.dns.answer_ttl, seconds(0));
  EXPECT_EQ(c.dns.upstream_timeout, milliseconds(500));
  EXPECT_EQ(c.dns.cache.max_entries, 10U);
  EXPECT_EQ(c.dns.cache.serve_stale, seconds(0));
  EXPECT_EQ(c.dns.allow.size(), 1 + core::private_networks().size());
  EXPECT_EQ(c.dns.allow[0].to_string(), "192.0.2.0/24");
  EXPECT_EQ(c.dns.per_client_qps, 0U);
  EXPECT_TRUE(c.dns.self_cache_host);
  ASSERT_EQ(c.dns.cache_hosts.size(), 1U);
  EXPECT_TRUE(c.proxy.http_listen.empty());
  EXPECT_EQ(c.proxy.allow.size(), 2U);
  EXPECT_EQ(c.admin.listen.to_string(), "[::1]:9091");
  EXPECT_EQ(c.storage.path, "/data/cache");
  EXPECT_EQ(c.storage.max_size, 100ULL << 30);
  EXPECT_EQ(c.storage.min_free, 512ULL << 20);
  EXPECT_EQ(c.ca.cert_file, "/etc/pt/ca.pem");
  EXPECT_EQ(c.ca.key_file, "/etc/pt/ca.key");
  EXPECT_EQ(c.health.interval, seconds(2));
  EXPECT_EQ(c.health.timeout, milliseconds(500));
  EXPECT_EQ(c.health.fall, 3U);
  EXPECT_EQ(c.health.rise, 4U);
}

TEST(ConfigLoaderTest, StoragePathFollowsStateDir) {
  EXPECT_EQ(load_ok("state_dir: /srv/pt\n").storage.path, "/srv/pt/cache");
  EXPECT_EQ(load_ok("state_dir: /srv/pt\nstorage: {path: \"\"}\n").storage.path, "/srv/pt/cache");
}

TEST(ConfigLoaderTest, LogLevelAndFormatAreChecked) {
  EXPECT_EQ(one_error("log: {level: loud}\n").key, "log.level");
  EXPECT_EQ(one_error("log: {format: xml}\n").key, "log.format");
  EXPECT_EQ(load_ok("log: {level: warn}\n").log.level, spdlog::level::warn);
  EXPECT_EQ(load_ok("log: {level: error}\n").log.level, spdlog::level::err);
  EXPECT_EQ(load_ok("log: {level: off}\n").log.level, spdlog::level::off);
}

TEST(ConfigLoaderTest, StateDirMustNotBeEmpty) {
  EXPECT_THAT(one_error("state_dir: \"\"\n").message, HasSubstr("must not be empty"));
}

TEST(ConfigLoaderTest, AddressListsTakeKeywordAndAddresses) {
  Config c = load_ok("appliance: {addresses: [auto, 192.0.2.1]}\n");
  EXPECT_TRUE(c.appliance.auto_addresses);
  EXPECT_EQ(c.appliance.addresses.size(), 1U);
  EXPECT_EQ(one_error("appliance: {addresses: [self]}\n").key, "appliance.addresses[0]");
  EXPECT_THAT(one_error("appliance: {addresses: []}\n").message, HasSubstr("at least one"));
  EXPECT_EQ(one_error("dns: {cache_hosts: [auto]}\n").key, "dns.cache_hosts[0]");
  EXPECT_EQ(one_error("dns: {cache_hosts: [cache.lan]}\n").key, "dns.cache_hosts[0]");
}

TEST(ConfigLoaderTest, InterceptClientsAreAllOrNetworksAndEnrolled) {
  auto defaults_intercept = load_ok("").dns.intercept;
  EXPECT_TRUE(defaults_intercept.all_clients);
  EXPECT_FALSE(defaults_intercept.enrolled);
  EXPECT_EQ(defaults_intercept.untrusted_bypass, std::chrono::hours(1));
  EXPECT_EQ(defaults_intercept.max_bypassed, 4096U);

  auto enrolled = load_ok("dns: {intercept: {clients: [enrolled], untrusted_bypass: 0}}\n");
  EXPECT_FALSE(enrolled.dns.intercept.all_clients);
  EXPECT_TRUE(enrolled.dns.intercept.enrolled);
  EXPECT_TRUE(enrolled.dns.intercept.networks.empty());
  EXPECT_EQ(enrolled.dns.intercept.untrusted_bypass, std::chrono::milliseconds(0));

  auto mixed = load_ok(
      "dns:\n  intercept:\n    clients: [10.1.0.0/16, enrolled, \"fd00::/8\", 10.1.0.0/16]\n"
      "    max_bypassed: 10\n");
  EXPECT_FALSE(mixed.dns.intercept.all_clients);
  EXPECT_TRUE(mixed.dns.intercept.enrolled);
  EXPECT_EQ(mixed.dns.intercept.networks.size(), 2U);
  EXPECT_EQ(mixed.dns.intercept.max_bypassed, 10U);
  EXPECT_FALSE(load_ok("dns: {intercept: {clients: [private]}}\n").dns.intercept.networks.empty());
  EXPECT_EQ(to_string(mixed.dns.intercept), "enrolled, 10.1.0.0/16, fd00::/8");
  EXPECT_EQ(to_string(enrolled.dns.intercept), "enrolled");
  EXPECT_EQ(to_string(defaults_intercept), "all");
}

TEST(ConfigLoaderTest, InterceptErrorsNameLineAndKey) {
  auto all_and_more = one_error("dns:\n  intercept:\n    clients: [all, enrolled]\n");
  EXPECT_EQ(all_and_more.key, "dns.intercept.clients");
  EXPECT_EQ(all_and_more.line, 3);
  EXPECT_THAT(all_and_more.message, HasSubstr("list it alone"));
  auto bad_item = one_error("dns:\n  intercept:\n    clients: [all-of-them]\n");
  EXPECT_EQ(bad_item.key, "dns.intercept.clients[0]");
  EXPECT_THAT(bad_item.message, HasSubstr("\"enrolled\""));
  EXPECT_EQ(one_error("dns: {intercept: {clients: [10.0.0.1/8]}}\n").key,
            "dns.intercept.clients[0]");
  EXPECT_THAT(one_error("dns: {intercept: {clients: []}}\n").message, HasSubstr("no client"));
  EXPECT_EQ(one_error("dns: {intercept: {untrusted_bypass: forever}}\n").key,
            "dns.intercept.untrusted_bypass");
  EXPECT_THAT(one_error("dns: {intercept: {untrusted_bypass: 31d}}\n").message,
              HasSubstr("at most 30d"));
  EXPECT_EQ(one_error("dns: {intercept: {max_bypassed: 0}}\n").key, "dns.intercept.max_bypassed");
  EXPECT_EQ(one_error("dns: {intercept: {client: [all]}}\n").key, "dns.intercept.client");
}

TEST(ConfigLoaderTest, ListenAddressesNeedPorts) {
  auto e = one_error("dns:\n  listen: [\"0.0.0.0:53\", \"0.0.0.0\"]\n");
  EXPECT_EQ(e.key, "dns.listen[1]");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 26);
  EXPECT_EQ(one_error("admin: {listen: localhost:9090}\n").key, "admin.listen");
  EXPECT_EQ(one_error("proxy: {http_listen: [\"[::]:99999\"]}\n").key, "proxy.http_listen[0]");
}

TEST(ConfigLoaderTest, UpstreamsTakeSystemAddressesAndPorts) {
  Config c = load_ok("dns: {upstreams: [system, \"192.0.2.1\"]}\n");
  EXPECT_TRUE(c.dns.system_upstreams);
  EXPECT_EQ(c.dns.upstreams.size(), 1U);
  EXPECT_EQ(one_error("dns: {upstreams: [\"dns.google\"]}\n").key, "dns.upstreams[0]");
  EXPECT_THAT(one_error("dns: {upstreams: []}\n").message, HasSubstr("at least one"));
}

TEST(ConfigLoaderTest, AllowListsTakePrivateAndCidrs) {
  EXPECT_THAT(one_error("proxy: {allow: []}\n").message, HasSubstr("refuse every client"));
  EXPECT_EQ(one_error("proxy: {allow: [everyone]}\n").key, "proxy.allow[0]");
  EXPECT_EQ(one_error("dns: {allow: [\"10.0.0.0/33\"]}\n").key, "dns.allow[0]");
  // Duplicates collapse: "private" twice is the private set once.
  EXPECT_EQ(load_ok("dns: {allow: [private, private]}\n").dns.allow, core::private_networks());
}

TEST(ConfigLoaderTest, AnswerTtlIsWholeSecondsUpToADay) {
  EXPECT_EQ(load_ok("dns: {answer_ttl: 1d}\n").dns.answer_ttl, seconds(86400));
  EXPECT_THAT(one_error("dns: {answer_ttl: 1500ms}\n").message, HasSubstr("whole seconds"));
  EXPECT_THAT(one_error("dns: {answer_ttl: 2d}\n").message, HasSubstr("whole seconds"));
}

TEST(ConfigLoaderTest, ProxyConnectionLimitsAreBounded) {
  auto c = load_ok("proxy: {request_timeout: 5s, write_timeout: 500ms, max_connections: 10}\n");
  EXPECT_EQ(c.proxy.request_timeout, seconds(5));
  EXPECT_EQ(c.proxy.write_timeout, milliseconds(500));
  EXPECT_EQ(c.proxy.max_connections, 10U);
  auto e = one_error("proxy:\n  write_timeout: 10ms\n");
  EXPECT_EQ(e.key, "proxy.write_timeout");
  EXPECT_EQ(e.line, 2);
  EXPECT_THAT(e.message, HasSubstr("between 100ms and 1h"));
  EXPECT_EQ(one_error("proxy: {max_connections: 0}\n").key, "proxy.max_connections");
}

TEST(ConfigLoaderTest, MaxConnectionsPerClientIsAWholeNumberUpToAMillion) {
  EXPECT_EQ(load_ok("proxy: {max_connections_per_client: 3}\n").proxy.max_connections_per_client,
            3U);
  EXPECT_EQ(load_ok("proxy: {max_connections_per_client: 0}\n").proxy.max_connections_per_client,
            0U);  // no per-client limit
  EXPECT_EQ(
      load_ok("proxy: {max_connections_per_client: 1000000}\n").proxy.max_connections_per_client,
      1'000'000U);
  EXPECT_EQ(one_error("proxy:\n  max_connections_per_client: -1\n").to_string(),
            "t.yaml:2:31: proxy.max_connections_per_client: expected a whole number, got \"-1\"");
  EXPECT_EQ(one_error("proxy:\n  max_connections_per_client: 1000001\n").to_string(),
            "t.yaml:2:31: proxy.max_connections_per_client: must be between 0 and 1000000, got "
            "1000001");
  EXPECT_EQ(one_error("proxy: {max_connections_per_client: many}\n").key,
            "proxy.max_connections_per_client");
}

TEST(ConfigLoaderTest, HandoverIsAutoOrABoundedDuration) {
  EXPECT_EQ(handover_or_auto(load_ok("proxy: {handover: 0s}\n")), seconds(0));
  EXPECT_EQ(handover_or_auto(load_ok("proxy: {handover: 30s}\n")), seconds(30));
  auto automatic = load_ok(
      "proxy: {handover: auto}\ndns: {answer_ttl: 30s}\n"
      "health: {interval: 2s, timeout: 500ms}\n");
  EXPECT_FALSE(automatic.proxy.handover.has_value());
  EXPECT_EQ(handover_or_auto(automatic), milliseconds(32500));
  auto e = one_error("proxy:\n  handover: soon\n");
  EXPECT_EQ(e.key, "proxy.handover");
  EXPECT_EQ(e.line, 2);
  EXPECT_THAT(e.message, HasSubstr("\"auto\" or a duration"));
  EXPECT_THAT(one_error("proxy: {handover: 11m}\n").message, HasSubstr("at most 10m"));
  EXPECT_EQ(one_error("proxy: {handover: [1s]}\n").key, "proxy.handover");
}

TEST(ConfigLoaderTest, UpstreamTimeoutIsBounded) {
  EXPECT_THAT(one_error("dns: {upstream_timeout: 0}\n").message, HasSubstr("between 10ms and 60s"));
  EXPECT_THAT(one_error("dns: {upstream_timeout: 2m}\n").message, HasSubstr("between"));
}

TEST(ConfigLoaderTest, CountsAreWholeNumbersInRange) {
  EXPECT_THAT(one_error("health: {fall: 0}\n").message, HasSubstr("between 1 and 100"));
  EXPECT_THAT(one_error("health: {rise: two}\n").message, HasSubstr("expected a whole number"));
  EXPECT_THAT(one_error("health: {rise: -1}\n").message, HasSubstr("expected a whole number"));
  EXPECT_THAT(one_error("dns: {cache: {max_entries: 1e6}}\n").message,
              HasSubstr("expected a whole number"));
  EXPECT_THAT(one_error("dns: {rate_limit: {per_client_qps: 99999999999}}\n").message,
              HasSubstr("between 0 and 10000000"));
}

TEST(ConfigLoaderTest, SizesAreChecked) {
  auto e = one_error("storage:\n  max_size: 100GB!\n");
  EXPECT_EQ(e.key, "storage.max_size");
  EXPECT_THAT(e.message, HasSubstr("expected a size like \"512MiB\""));
  EXPECT_EQ(load_ok("storage: {min_free: 0}\n").storage.min_free, 0U);
}

TEST(ConfigLoaderTest, LowWatermarkIsAShareOfMaxSizeOrASizeBelowIt) {
  EXPECT_EQ(load_ok("storage: {max_size: 100GiB}\n").storage.low_watermark, 90ULL << 30);
  EXPECT_EQ(load_ok("storage: {max_size: 1000, low_watermark: 75%}\n").storage.low_watermark, 750U);
  // The order of the keys does not matter.
  EXPECT_EQ(load_ok("storage: {low_watermark: 80GiB, max_size: 100GiB}\n").storage.low_watermark,
            80ULL << 30);
  EXPECT_EQ(load_ok("storage: {}\n").storage.low_watermark, 0U);  // unbounded: no eviction
  // Exact for sizes near the top of the range.
  EXPECT_EQ(load_ok("storage: {max_size: 18446744073709551615}\n").storage.low_watermark,
            18446744073709551615ULL / 100 * 90 + 18446744073709551615ULL % 100 * 90 / 100);

  auto above = one_error("storage:\n  max_size: 10GiB\n  low_watermark: 10GiB\n");
  EXPECT_EQ(above.key, "storage.low_watermark");
  EXPECT_EQ(above.line, 3);
  EXPECT_THAT(above.message, HasSubstr("below storage.max_size"));
  EXPECT_THAT(one_error("storage: {low_watermark: 1GiB}\n").message,
              HasSubstr("needs storage.max_size"));
  EXPECT_THAT(one_error("storage: {max_size: 1GiB, low_watermark: 100%}\n").message,
              HasSubstr("between 1 and 99"));
  EXPECT_THAT(one_error("storage: {max_size: 1GiB, low_watermark: x%}\n").message,
              HasSubstr("a whole number"));
}

TEST(ConfigLoaderTest, S3BackendReadsEverySetting) {
  auto c = load_ok(
      "state_dir: /srv/pt\n"
      "storage:\n"
      "  backend: s3\n"
      "  spool: /var/cache/pullthrough/spool\n"
      "  s3:\n"
      "    endpoint: https://S3.Example.Internal:9000/\n"
      "    region: eu-central-1\n"
      "    bucket: pull.through-1\n"
      "    prefix: cache/\n"
      "    path_style: true\n"
      "    access_key_file: /etc/pullthrough/s3.key\n"
      "    secret_key_file: /etc/pullthrough/s3.secret\n"
      "    ca_file: /etc/pullthrough/s3-ca.pem\n"
      "    hot_tier: 20GiB\n"
      "    timeout: 5s\n"
      "    max_retries: 2\n"
      "    probe_interval: 30s\n");
  EXPECT_EQ(c.storage.backend, StorageBackend::s3);
  EXPECT_EQ(c.storage.spool, "/var/cache/pullthrough/spool");
  EXPECT_EQ(c.storage.path, "/srv/pt/cache");
  const S3Config& s3 = c.storage.s3;
  EXPECT_EQ(s3.endpoint.to_string(), "https://s3.example.internal:9000");
  EXPECT_EQ(s3.region, "eu-central-1");
  EXPECT_EQ(s3.bucket, "pull.through-1");
  EXPECT_EQ(s3.prefix, "cache/");
  EXPECT_TRUE(s3.path_style);
  EXPECT_EQ(s3.access_key_file, "/etc/pullthrough/s3.key");
  EXPECT_EQ(s3.secret_key_file, "/etc/pullthrough/s3.secret");
  EXPECT_EQ(s3.ca_file, "/etc/pullthrough/s3-ca.pem");
  EXPECT_EQ(s3.hot_tier, 20ULL << 30);
  EXPECT_EQ(s3.timeout, seconds(5));
  EXPECT_EQ(s3.max_retries, 2U);
  EXPECT_EQ(s3.probe_interval, seconds(30));
  // The spool follows state_dir when not set.
  EXPECT_EQ(load_ok("state_dir: /srv/pt\n").storage.spool, "/srv/pt/spool");
}

TEST(ConfigLoaderTest, S3BackendNamesEachMissingSetting) {
  auto errors = load_errors("storage:\n  backend: s3\n");
  std::vector<std::string> keys;
  for (const auto& e : errors) {
    keys.push_back(e.key);
    EXPECT_THAT(e.message, HasSubstr("required with storage.backend: s3"));
    EXPECT_EQ(e.line, 2) << e.key;  // the storage mapping
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"storage.s3.endpoint", "storage.s3.region",
                                            "storage.s3.bucket", "storage.s3.access_key_file",
                                            "storage.s3.secret_key_file"}));
  // The same settings are not required of the filesystem backend, which ignores them.
  EXPECT_EQ(load_ok("storage:\n  s3: {bucket: some-bucket}\n").storage.backend,
            StorageBackend::filesystem);
}

TEST(ConfigLoaderTest, S3SettingsAreValidatedWithTheirLines) {
  const std::string base =
      "storage:\n"
      "  backend: s3\n"
      "  s3:\n"
      "    endpoint: http://127.0.0.1:9000\n"
      "    region: us-east-1\n"
      "    access_key_file: /k\n"
      "    secret_key_file: /s\n";
  auto with = [&](const std::string& line) { return base + "    " + line + "\n"; };
  EXPECT_EQ(load_ok(with("bucket: ok-bucket")).storage.s3.bucket, "ok-bucket");
  for (const char* bucket : {"ab", "Upper", "-dash", "dash-", "a..b", "192.168.1.2", "a_b",
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}) {
    auto e = one_error(with(std::string("bucket: \"") + bucket + "\""));
    EXPECT_EQ(e.key, "storage.s3.bucket") << bucket;
    EXPECT_EQ(e.line, 8) << bucket;
  }
  for (const char* prefix : {"/cache/", "a//b/", "../x/", "x/./", "has space/", "back\\\\slash"}) {
    auto e = one_error(with("bucket: b-1\n    prefix: \"" + std::string(prefix) + "\""));
    EXPECT_EQ(e.key, "storage.s3.prefix") << prefix;
    EXPECT_EQ(e.line, 9) << prefix;
  }
  EXPECT_EQ(load_ok(with("bucket: b-1\n    prefix: team/cache/")).storage.s3.prefix, "team/cache/");
  EXPECT_EQ(one_error(with("bucket: b-1\n    region: US East")).key, "storage.s3.region");
  EXPECT_EQ(one_error(with("bucket: b-1\n    max_retries: 11")).key, "storage.s3.max_retries");
  EXPECT_EQ(one_error(with("bucket: b-1\n    timeout: 10ms")).key, "storage.s3.timeout");
  EXPECT_EQ(one_error(with("bucket: b-1\n    hot_tier: lots")).key, "storage.s3.hot_tier");
  EXPECT_EQ(one_error("storage: {backend: tape}\n").key, "storage.backend");
  auto endpoint = one_error("storage:\n  s3:\n    endpoint: s3.example.com/bucket\n");
  EXPECT_EQ(endpoint.key, "storage.s3.endpoint");
  EXPECT_EQ(endpoint.line, 3);
  // Virtual-hosted style needs a name to put the bucket in, and a bucket the certificate covers.
  EXPECT_EQ(one_error(with("bucket: b-1\n    path_style: false")).key, "storage.s3.path_style");
  auto dotted = one_error(
      "storage:\n  backend: s3\n  s3:\n    endpoint: https://s3.example.com\n"
      "    region: us-east-1\n    bucket: a.b.c\n    path_style: false\n"
      "    access_key_file: /k\n    secret_key_file: /s\n");
  EXPECT_EQ(dotted.key, "storage.s3.path_style");
}

TEST(ConfigLoaderTest, S3KeysAreNeverInline) {
  auto e = one_error("storage:\n  s3:\n    secret_key: wJalrXUtnFEMI\n");
  EXPECT_EQ(e.key, "storage.s3.secret_key");
  EXPECT_THAT(e.message, HasSubstr("secret_key_file"));
  // The message never repeats the value.
  EXPECT_THAT(e.message, Not(HasSubstr("wJalrXUtnFEMI")));
  EXPECT_EQ(one_error("storage:\n  s3:\n    access_key: AKID\n").key, "storage.s3.access_key");
}

TEST(ConfigLoaderTest, RetentionRulesKeepTheirOrderAndWhatTheyKeep) {
  auto result = load_string(
      "retention:\n"
      "  interval: 30m\n"
      "  rules:\n"
      "    - match: \"quay.io/myorg/**\"\n"
      "      keep: forever\n"
      "    - {match: \"registry-1.docker.io/library/*:*-rc*\", expire_unused_after: 2d}\n"
      "    - {match: \"**\", expire_unused_after: 30d, keep_tags: 20}\n"
      "    - {match: \"ghcr.io/**\", keep_tags: 3}\n",
      "t.yaml");
  ASSERT_TRUE(result.config);
  const auto& retention = result.config->retention;
  EXPECT_EQ(retention.interval, minutes(30));
  ASSERT_EQ(retention.rules.size(), 4U);
  EXPECT_EQ(retention.rules[0].match.pattern(), "quay.io/myorg/**");
  EXPECT_TRUE(retention.rules[0].keep_forever);
  EXPECT_FALSE(retention.rules[0].expire_unused_after);
  EXPECT_TRUE(retention.rules[1].match.matches("registry-1.docker.io/library/alpine", "3-rc1"));
  EXPECT_EQ(retention.rules[1].expire_unused_after, std::chrono::hours(48));
  EXPECT_FALSE(retention.rules[1].keep_tags);
  EXPECT_EQ(retention.rules[2].expire_unused_after, std::chrono::hours(24 * 30));
  EXPECT_EQ(retention.rules[2].keep_tags, 20U);
  EXPECT_FALSE(retention.rules[3].expire_unused_after);
  EXPECT_EQ(retention.rules[3].keep_tags, 3U);
  EXPECT_TRUE(result.warnings.empty());

  EXPECT_TRUE(load_ok("retention: {rules: []}\n").retention.rules.empty());
  EXPECT_EQ(load_ok("").retention.interval, std::chrono::hours(1));
}

TEST(ConfigLoaderTest, BadRetentionRulesAreErrorsWithTheirLineAndKey) {
  auto glob = one_error("retention:\n  rules:\n    - {match: \"quay.io/a**/b\", keep: forever}\n");
  EXPECT_EQ(glob.key, "retention.rules[0].match");
  EXPECT_EQ(glob.line, 3);
  EXPECT_THAT(glob.message, HasSubstr("whole path segment"));

  auto duration = one_error(
      "retention:\n  rules:\n    - {match: \"**\", keep: forever}\n"
      "    - {match: \"**\", expire_unused_after: 2 weeks}\n");
  EXPECT_EQ(duration.key, "retention.rules[1].expire_unused_after");
  EXPECT_EQ(duration.line, 4);

  EXPECT_THAT(one_error("retention: {rules: [{keep: forever}]}\n").message,
              HasSubstr("needs a match pattern"));
  EXPECT_THAT(one_error("retention: {rules: [{match: \"**\"}]}\n").message,
              HasSubstr("needs keep: forever, expire_unused_after or keep_tags"));
  EXPECT_THAT(one_error("retention: {rules: [{match: \"**\", keep: always}]}\n").message,
              HasSubstr("expected \"forever\""));
  EXPECT_THAT(
      one_error("retention: {rules: [{match: \"**\", keep: forever, keep_tags: 2}]}\n").message,
      HasSubstr("drop expire_unused_after and keep_tags"));
  EXPECT_THAT(one_error("retention: {rules: [{match: \"**\", keep_tags: 0}]}\n").message,
              HasSubstr("between 1 and"));
  EXPECT_THAT(one_error("retention: {rules: [{match: \"**\", expire_unused_after: 0}]}\n").message,
              HasSubstr("greater than zero"));
  EXPECT_EQ(one_error("retention: {rules: [{match: \"**\", keep: forever, kep_tags: 1}]}\n").key,
            "retention.rules[0].kep_tags");
  EXPECT_THAT(one_error("retention: {interval: 10s}\n").message, HasSubstr("at least 1m"));
  EXPECT_THAT(one_error("retention: {rules: {match: \"**\"}}\n").message,
              HasSubstr("expected a list"));
}

TEST(ConfigLoaderTest, PrefetchTakesReferencesOfTheRegistriesAndPlatforms) {
  const std::string digest = "sha256:" + std::string(64, 'e');
  auto c = load_ok(
      "prefetch:\n"
      "  interval: 2h\n"
      "  refs: [docker.io/library/alpine:3.20, quay.io/org/app, \"ghcr.io/a/b@" +
      digest +
      "\"]\n"
      "  platforms: [linux/amd64, linux/arm64/v8]\n");
  EXPECT_EQ(c.prefetch.interval, std::chrono::hours(2));
  ASSERT_EQ(c.prefetch.refs.size(), 3U);
  EXPECT_EQ(c.prefetch.refs[0], "docker.io/library/alpine:3.20");  // an alias of Docker Hub
  ASSERT_EQ(c.prefetch.platforms.size(), 2U);
  EXPECT_EQ(c.prefetch.platforms[1].to_string(), "linux/arm64/v8");
  EXPECT_TRUE(load_ok("prefetch: {platforms: [all]}\n").prefetch.platforms[0].all);
  EXPECT_EQ(load_ok("").prefetch.platforms.at(0).to_string(), "linux/amd64");
  EXPECT_TRUE(load_ok("").prefetch.refs.empty());

  auto e = one_error("prefetch:\n  refs: [quay.io/app, example.com/app:1]\n");
  EXPECT_EQ(e.key, "prefetch.refs[1]");
  EXPECT_EQ(e.line, 2);
  EXPECT_THAT(e.message, HasSubstr("not one of the registries"));
  EXPECT_THAT(one_error("prefetch: {refs: [quay.io/App:1]}\n").message, HasSubstr("quay.io/App"));
  EXPECT_THAT(one_error("prefetch: {refs: [\"quay.io/a/*:1\"]}\n").message,
              HasSubstr("not a pattern"));
  EXPECT_THAT(one_error("prefetch: {refs: [\"quay.io/a@sha256:12\"]}\n").message,
              HasSubstr("digest"));
  EXPECT_THAT(one_error("prefetch: {refs: [alpine]}\n").message, HasSubstr("host/repository"));
  EXPECT_EQ(one_error("prefetch: {platforms: [linux]}\n").key, "prefetch.platforms[0]");
  EXPECT_THAT(one_error("prefetch: {platforms: []}\n").message, HasSubstr("at least one"));
  EXPECT_THAT(one_error("prefetch: {interval: 30s}\n").message, HasSubstr("at least 1m"));
}

// storage.max_size and retention rules were once accepted with a warning that nothing applied
// them; now that eviction and retention do, a file that sets them loads without one.
TEST(ConfigLoaderTest, MaxSizeAndRetentionRulesLoadWithoutWarnings) {
  auto result = load_string(
      "storage:\n  max_size: 100GiB\nretention:\n  rules: [{match: \"**\", keep_tags: 3}]\n",
      "t.yaml");
  ASSERT_TRUE(result.config);
  EXPECT_EQ(result.config->storage.max_size, 100ULL << 30);
  EXPECT_TRUE(result.warnings.empty());
  EXPECT_TRUE(load_string(std::string(embedded_default_yaml()), "default.yaml").warnings.empty());
}

TEST(ConfigLoaderTest, HealthTimeoutMustFitTheInterval) {
  auto e = one_error("health: {interval: 500ms}\n");
  EXPECT_EQ(e.key, "health.timeout");
  EXPECT_THAT(e.message, HasSubstr("must not exceed health.interval"));
  auto zero = load_errors("health: {interval: 0s, timeout: 0s}\n");
  ASSERT_EQ(zero.size(), 2U);
  EXPECT_EQ(zero[0].to_string(), "t.yaml:1:20: health.interval: must be greater than zero");
  EXPECT_EQ(zero[1].to_string(), "t.yaml:1:33: health.timeout: must be greater than zero");
}

TEST(ConfigLoaderTest, CaFilesGoTogether) {
  EXPECT_THAT(one_error("ca: {cert_file: /a.pem}\n").message, HasSubstr("set both or neither"));
  EXPECT_THAT(one_error("ca: {key_file: /a.key}\n").message, HasSubstr("set both or neither"));
}

TEST(RegistryConfigTest, HostsAreLowerCasedAndUpstreamDefaultsToHost) {
  Config c = load_ok("registries:\n  - host: Registry.Example.COM.\n    aliases: [EXAMPLE.com]\n");
  ASSERT_EQ(c.registries.size(), 1U);
  EXPECT_EQ(c.registries[0].host, "registry.example.com");
  EXPECT_EQ(c.registries[0].aliases[0], "example.com");
  EXPECT_EQ(c.registries[0].upstream.to_string(), "https://registry.example.com");
  EXPECT_EQ(c.registries[0].manifest_ttl, minutes(5));
}

TEST(RegistryConfigTest, ReadsEveryField) {
  Config c = load_ok(
      "registries:\n"
      "  - host: reg.test\n"
      "    upstream: https://127.0.0.1:5000/\n"
      "    ca_file: /etc/pt/test-ca.pem\n"
      "    credentials: {username: bot, password_file: /etc/pt/secret}\n"
      "    manifest_ttl: 1m\n"
      "  - host: plain.test\n"
      "    upstream: \"http://[::1]:8080\"\n");
  const auto& r = c.registries[0];
  EXPECT_EQ(r.upstream.scheme, "https");
  EXPECT_EQ(r.upstream.host, "127.0.0.1");
  EXPECT_EQ(r.upstream.port, 5000);
  EXPECT_EQ(r.ca_file, "/etc/pt/test-ca.pem");
  ASSERT_TRUE(r.credentials);
  EXPECT_EQ(r.credentials->username, "bot");
  EXPECT_EQ(r.credentials->password_file, "/etc/pt/secret");
  EXPECT_EQ(r.manifest_ttl, minutes(1));
  EXPECT_EQ(c.registries[1].upstream.host, "::1");
  EXPECT_EQ(c.registries[1].upstream.to_string(), "http://[::1]:8080");
  EXPECT_EQ(c.find_registry("REG.test"), &c.registries[0]);
  EXPECT_EQ(c.find_registry("reg.test."), &c.registries[0]);
  EXPECT_EQ(c.find_registry("other.test"), nullptr);
}

TEST(RegistryConfigTest, PushIsPassthroughOrDeny) {
  Config c = load_ok(
      "registries:\n"
      "  - {host: a.io, push: deny}\n"
      "  - {host: b.io, push: passthrough}\n"
      "  - {host: c.io}\n");
  EXPECT_EQ(c.registries[0].push, PushMode::deny);
  EXPECT_EQ(c.registries[1].push, PushMode::passthrough);
  EXPECT_EQ(c.registries[2].push, PushMode::passthrough);
  EXPECT_EQ(one_error("registries:\n  - host: a.io\n    push: maybe\n").to_string(),
            "t.yaml:3:11: registries[0].push: must be passthrough or deny, not \"maybe\"");
  // Spelled as written: no case folding, no YAML 1.1 booleans.
  EXPECT_EQ(one_error("registries: [{host: a.io, push: Deny}]\n").key, "registries[0].push");
  EXPECT_EQ(one_error("registries: [{host: a.io, push: false}]\n").key, "registries[0].push");
  EXPECT_EQ(one_error("registries: [{host: a.io, push: [deny]}]\n").key, "registries[0].push");
}

TEST(RegistryConfigTest, SharePrivateIsTrueOrFalse) {
  Config c = load_ok(
      "registries:\n"
      "  - {host: a.io, share_private: true, credentials: {username: u, password_file: /p}}\n"
      "  - {host: b.io, share_private: false}\n");
  EXPECT_TRUE(c.registries[0].share_private);
  EXPECT_FALSE(c.registries[1].share_private);
  // YAML 1.1's yes/no/on/off are refused: the file says exactly what it means.
  EXPECT_EQ(one_error("registries:\n  - host: a.io\n    share_private: yes\n").to_string(),
            "t.yaml:3:20: registries[0].share_private: expected true or false, got \"yes\"");
  EXPECT_EQ(one_error("registries: [{host: a.io, share_private: 1}]\n").key,
            "registries[0].share_private");
  // The second registry's error names its own index.
  EXPECT_EQ(one_error("registries:\n  - {host: a.io}\n  - {host: b.io, share_private: on}\n").key,
            "registries[1].share_private");
}

// share_private widens who may read what, or, without credentials, does nothing: either way the
// operator hears of it (serve logs every warning at start; check-config prints them).
TEST(RegistryConfigTest, SharePrivateIsReportedWithItsRegistryAndWhatItMeans) {
  auto result = load_string(
      "registries:\n"
      "  - host: a.io\n"
      "    credentials: {username: u, password_file: /p}\n"
      "    share_private: true\n"
      "  - host: b.io\n"
      "    share_private: true\n"
      "  - {host: c.io, share_private: false, credentials: {username: u, password_file: /p}}\n",
      "t.yaml");
  ASSERT_TRUE(result.config);
  ASSERT_EQ(result.warnings.size(), 2U);
  EXPECT_EQ(result.warnings[0].to_string(),
            "t.yaml:4:20: registries[0].share_private: \"a.io\": cached content of repositories "
            "anonymous access cannot read is served to every client without checking their "
            "credentials");
  EXPECT_EQ(result.warnings[1].key, "registries[1].share_private");
  EXPECT_EQ(result.warnings[1].line, 6);
  EXPECT_THAT(result.warnings[1].message, HasSubstr("\"b.io\" has no credentials"));
  EXPECT_THAT(result.warnings[1].message, HasSubstr("no effect"));
}

TEST(RegistryConfigTest, FindsByAlias) {
  Config c = defaults();
  EXPECT_EQ(c.find_registry("Docker.IO"), &c.registries[0]);
  EXPECT_EQ(c.find_registry("quay.io"), &c.registries[1]);
  EXPECT_EQ(c.find_registry("io"), nullptr);
}

TEST(RegistryConfigTest, RejectsBadHosts) {
  for (const char* host : {"-a.io", "a-.io", "a..io", "a_b.io", "a.io:5000", "\"*.io\"", "\"\""}) {
    auto errors = load_errors(std::string("registries: [{host: ") + host + "}]\n");
    ASSERT_FALSE(errors.empty()) << host;
    EXPECT_EQ(errors[0].key, "registries[0].host") << host;
  }
  EXPECT_EQ(one_error(std::string("registries: [{host: ") + std::string(64, 'a') + ".io}]\n").key,
            "registries[0].host");
}

TEST(RegistryConfigTest, RejectsBadUpstreamUrls) {
  for (const char* url :
       {"ftp://x.io", "x.io", "https://", "https://x.io/v2", "https://u:p@x.io", "https://x.io:0",
        "https://x.io:70000", "https://x.io?a", "https://[x]:1"}) {
    auto e = one_error(std::string("registries: [{host: a.io, upstream: \"") + url + "\"}]\n");
    EXPECT_EQ(e.key, "registries[0].upstream") << url;
  }
}

TEST(RegistryConfigTest, HostRequired) {
  EXPECT_THAT(one_error("registries: [{aliases: [a.io]}]\n").message,
              HasSubstr("every registry needs a host"));
}

TEST(RegistryConfigTest, CredentialsNeedBothFields) {
  EXPECT_THAT(one_error("registries: [{host: a.io, credentials: {username: u}}]\n").message,
              HasSubstr("needs both username and password_file"));
  EXPECT_EQ(one_error("registries: [{host: a.io, credentials: {username: u, password: p, "
                      "password_file: /x}}]\n")
                .key,
            "registries[0].credentials.password");
}

TEST(RegistryConfigTest, NameInterceptedTwiceIsAnError) {
  auto e = one_error("registries:\n  - {host: a.io}\n  - {host: b.io, aliases: [A.io]}\n");
  EXPECT_EQ(e.key, "registries[1]");
  EXPECT_EQ(e.line, 3);
  EXPECT_THAT(e.message, HasSubstr("\"a.io\" is already intercepted by registries[0]"));
}

TEST(RegistryConfigTest, AtLeastOneRegistry) {
  EXPECT_THAT(one_error("registries: []\n").message, HasSubstr("at least one registry"));
}

TEST(RegistryConfigTest, UnknownRegistryKey) {
  auto e = one_error("registries:\n  - host: a.io\n    upstrem: https://b.io\n");
  EXPECT_EQ(e.key, "registries[0].upstrem");
  EXPECT_EQ(e.line, 3);
}

TEST(ConfigFileTest, MissingFileIsAnError) {
  auto result = load_file("/nonexistent/pullthrough.yaml");
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_EQ(result.errors[0].to_string(), "/nonexistent/pullthrough.yaml: cannot open the file");
}

}  // namespace
}  // namespace pullthrough::config
