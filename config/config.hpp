// config/: the configuration's types, its loader (YAML with file, line and key in every error),
// and the embedded defaults.
//
// The appliance's configuration: parsed once from YAML (config/loader.hpp), validated, and then
// immutable. Every field's default is the value shown in config/pullthrough.yaml, and a unit test
// keeps the two equal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/common.h>

#include "config/platform.hpp"
#include "config/ref_glob.hpp"
#include "core/logging.hpp"
#include "core/net.hpp"
#include "core/units.hpp"

namespace pullthrough::config {

using core::Cidr;
using core::Duration;
using core::Endpoint;
using core::IpAddress;

struct LogConfig {
  spdlog::level::level_enum level = spdlog::level::info;
  core::LogFormat format = core::LogFormat::text;
  bool operator==(const LogConfig&) const = default;
};

struct ApplianceConfig {
  // "auto": this host's non-loopback interface addresses, read at start.
  bool auto_addresses = true;
  std::vector<IpAddress> addresses;
  bool operator==(const ApplianceConfig&) const = default;
};

struct DnsCacheConfig {
  std::uint64_t max_entries = 100000;
  Duration serve_stale = std::chrono::seconds(30);
  bool operator==(const DnsCacheConfig&) const = default;
};

// Which clients get the cache's addresses for intercepted names (dns.intercept). Every other client
// in dns.allow gets the real answers, as when the health gate is closed.
struct InterceptConfig {
  bool all_clients = true;     // `all`: every client (then nothing else is listed)
  bool enrolled = false;       // `enrolled`: machines that ran the installer (POST /enroll)
  std::vector<Cidr> networks;  // and these networks
  // How long a client whose TLS handshake showed it does not trust the CA gets the real answers;
  // zero: never learned.
  Duration untrusted_bypass = std::chrono::hours(1);
  std::uint32_t max_bypassed = 4096;  // clients remembered at once; the oldest goes first
  bool operator==(const InterceptConfig&) const = default;
};

// dns.intercept.clients as the configuration spells it: "all", or "enrolled, 10.1.0.0/16".
std::string to_string(const InterceptConfig& intercept);

struct DnsConfig {
  std::vector<Endpoint> listen;
  // "system": the nameservers of /etc/resolv.conf minus this appliance's own addresses.
  bool system_upstreams = true;
  std::vector<Endpoint> upstreams;
  Duration answer_ttl = std::chrono::seconds(10);
  Duration upstream_timeout = std::chrono::seconds(2);
  DnsCacheConfig cache;
  std::vector<Cidr> allow;
  std::uint32_t per_client_qps = 2000;  // 0 = no limit
  // "self": the appliance addresses.
  bool self_cache_host = true;
  std::vector<IpAddress> cache_hosts;
  InterceptConfig intercept;
  bool operator==(const DnsConfig&) const = default;
};

struct ProxyConfig {
  std::vector<Endpoint> listen;
  std::vector<Endpoint> http_listen;
  std::vector<Cidr> allow;
  // On a stop signal, how long the cache says it is leaving while it still serves, before its
  // listeners close. Unset ("auto"): handover_or_auto().
  std::optional<Duration> handover;
  // Per connection: from the end of one response (or the handshake) until the next request's
  // header is in, and for each write to the client to complete.
  Duration request_timeout = std::chrono::seconds(60);
  Duration write_timeout = std::chrono::seconds(60);
  std::uint32_t max_connections = 4096;
  // Open connections from one client address; 0: no limit of its own (max_connections still holds).
  std::uint32_t max_connections_per_client = 256;
  bool operator==(const ProxyConfig&) const = default;
};

struct AdminConfig {
  Endpoint listen;
  std::vector<Cidr> allow;
  // The bearer token that changes (POST, PUT, DELETE) need when `listen` is not a loopback
  // address; read at start. Empty: such a listener refuses changes.
  std::string token_file;
  bool operator==(const AdminConfig&) const = default;
};

struct UpstreamUrl {
  std::string scheme;  // "https" or "http"
  std::string host;    // lower case; an IPv6 literal without brackets
  std::uint16_t port = 443;
  std::string to_string() const;
  bool operator==(const UpstreamUrl&) const = default;
};

struct Credentials {
  std::string username;
  std::string password_file;
  bool operator==(const Credentials&) const = default;
};

// What a push (upload, manifest PUT, DELETE) to an intercepted registry meets.
enum class PushMode : std::uint8_t {
  passthrough,  // streamed to the upstream with the client's own credentials
  deny,         // refused with 405 UNSUPPORTED, naming where to push instead
};

struct RegistryConfig {
  std::string host;                  // lower case
  std::vector<std::string> aliases;  // lower case
  UpstreamUrl upstream;
  std::string ca_file;  // empty: the system trust store only
  std::optional<Credentials> credentials;
  Duration manifest_ttl = std::chrono::minutes(5);
  PushMode push = PushMode::passthrough;
  // Serve cached content of repositories that anonymous access cannot read to every client, on
  // the strength of `credentials`, without checking each client's own: the operator's explicit
  // choice to share an account's private repositories with the whole LAN.
  bool share_private = false;
  bool operator==(const RegistryConfig&) const = default;
};

// Where the cache's blobs and manifests are kept (see proxy/blob_store.hpp).
enum class StorageBackend : std::uint8_t {
  filesystem,  // under storage.path
  s3,          // in an S3 bucket; storage.spool holds fetches in flight (and the hot tier)
};

// An S3-compatible bucket (AWS S3, Ceph RGW, MinIO, ...). The keys are read from files when the
// cache starts, never from the configuration itself, and never logged.
struct S3Config {
  UpstreamUrl endpoint;  // http(s)://host[:port]; no path
  std::string region;
  std::string bucket;
  std::string prefix;  // prepended to every key as it is ("cache/"); may be empty
  // true: https://endpoint/bucket/key; false: https://bucket.endpoint/key (virtual-hosted).
  bool path_style = true;
  std::string access_key_file;
  std::string secret_key_file;
  std::string ca_file;  // trusted for the endpoint on top of the system store; may be empty
  // Verified blobs kept on the spool disk after their upload, least recently used out first, so
  // the most pulled ones are served without a request to the bucket; 0 = none are kept.
  std::uint64_t hot_tier = 0;
  Duration timeout = std::chrono::seconds(30);  // per connect, and per read or write in progress
  std::uint32_t max_retries = 4;                // of one request, after 5xx, SlowDown or a reset
  // The health check's PUT, GET and DELETE of a probe key run at most this often (three
  // requests each time: billed ones on AWS).
  Duration probe_interval = std::chrono::seconds(1);
  bool operator==(const S3Config&) const = default;
};

struct StorageConfig {
  StorageBackend backend = StorageBackend::filesystem;
  std::string path;  // resolved: <state_dir>/cache when not set
  // Backend s3: where fetches are spooled to local disk while they arrive and are verified.
  // Resolved: <state_dir>/spool when not set.
  std::string spool;
  S3Config s3;
  std::uint64_t max_size = 0;  // 0 = unbounded
  // Where eviction stops once it has started: resolved to 90% of max_size when not set; 0 when
  // max_size is 0.
  std::uint64_t low_watermark = 0;
  std::uint64_t min_free = 1ULL << 30;
  bool operator==(const StorageConfig&) const = default;
};

// One retention rule: what it matches and what it keeps. keep_forever excludes the other two;
// otherwise at least one of them is set.
struct RetentionRule {
  RefGlob match;
  bool keep_forever = false;
  // Content of matching references not used for this long goes at the next collection.
  std::optional<Duration> expire_unused_after;
  // At most this many tags per repository, the most recently used ones.
  std::optional<std::uint32_t> keep_tags;
  bool operator==(const RetentionRule&) const = default;
};

// The first rule that matches a reference decides; with no rules everything is kept.
struct RetentionConfig {
  Duration interval = std::chrono::hours(1);  // how often the rules are applied
  std::vector<RetentionRule> rules;
  bool operator==(const RetentionConfig&) const = default;
};

// Images fetched ahead of need and kept warm: each ref again every interval (a tag is resolved
// anew), pinned until the refresh after.
struct PrefetchConfig {
  Duration interval = std::chrono::hours(6);
  std::vector<std::string> refs;  // host/repository[:tag] or host/repository@digest
  // Of an image index, the children for these platforms: linux/amd64 when not set.
  std::vector<PlatformFilter> platforms;
  bool operator==(const PrefetchConfig&) const = default;
};

struct CaConfig {
  // Both set (operator's own CA) or both empty (generated under <state_dir>/ca).
  std::string cert_file;
  std::string key_file;
  bool operator==(const CaConfig&) const = default;
};

struct HealthConfig {
  Duration interval = std::chrono::seconds(1);
  Duration timeout = std::chrono::seconds(1);
  std::uint32_t fall = 2;
  std::uint32_t rise = 2;
  bool operator==(const HealthConfig&) const = default;
};

struct Config;

// proxy.handover, or for "auto" long enough for the DNS side to see the cache leave (one health
// check) and for every answer that named it to expire: answer_ttl + interval + timeout.
Duration handover_or_auto(const Config& config);

struct Config {
  std::string state_dir = "./var";
  LogConfig log;
  ApplianceConfig appliance;
  DnsConfig dns;
  ProxyConfig proxy;
  AdminConfig admin;
  std::vector<RegistryConfig> registries;
  StorageConfig storage;
  RetentionConfig retention;
  PrefetchConfig prefetch;
  CaConfig ca;
  HealthConfig health;
  bool operator==(const Config&) const = default;

  // The registry that owns a name (host or alias, any case), or nullptr.
  const RegistryConfig* find_registry(std::string_view name) const;
};

// The built-in configuration: what an empty file yields.
Config defaults();

}  // namespace pullthrough::config
