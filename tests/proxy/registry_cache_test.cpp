// RegistryCache through its own API: what building it does to storage.path, the files it refuses
// to start without, and the service's life (start on 127.0.0.1:0, leaving, stop), seen by a TLS
// client at its front door. The upstreams never answer: the resolver knows no names.
#include "proxy/registry_cache.hpp"

#include "core/asio.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "health/protocol.hpp"
#include "proxy/local_blob_store.hpp"
#include "proxy/metadata_index.hpp"
#include "tests/certs/test_support.hpp"
#include "tests/core/eventually.hpp"
#include "tests/proxy/server_tls_fixture.hpp"
#include "tests/proxy/test_support.hpp"
#include "tests/proxy/tls_client.hpp"

namespace pullthrough::proxy {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::pattern;
using testing::sha256_of;
using testing::TlsClient;

// Every name is NXDOMAIN, answered on the io_context as the real resolver does.
class NoNames final : public core::HostResolver {
 public:
  explicit NoNames(asio::io_context& io) : io_(io) {}
  void resolve(std::string /*host*/, std::function<void(core::ResolveResult)> done) override {
    ++calls_;
    asio::post(io_, [done = std::move(done)] { done(core::ResolveResult{{}, "NXDOMAIN"}); });
  }
  int calls() const { return calls_; }

 private:
  asio::io_context& io_;
  std::atomic<int> calls_{0};
};

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

class RegistryCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = *config::load_string(
                   "proxy: {listen: [\"127.0.0.1:0\"], allow: [\"127.0.0.0/8\"]}\n"
                   "registries:\n"
                   "  - {host: quay.io}\n"
                   "  - {host: ghcr.io}\n"
                   "storage: {path: \"" +
                       store_path() + "\", min_free: 0}\n",
                   "t.yaml")
                   .config;
  }

  void TearDown() override {
    if (worker_.joinable()) {
      if (!stopped_) {
        EXPECT_TRUE(stop());
      }
      io_.stop();
      worker_.join();
    }
  }

  std::string store_path() const { return (dir_.path() / "store").string(); }

  RegistryCache& build() {
    cache_ = std::make_unique<RegistryCache>(io_, config_, server_.tls, resolver_,
                                             std::vector<core::IpAddress>{});
    return *cache_;
  }

  // Builds the cache unless built, starts it, and runs its io_context on a thread.
  RegistryCache& start() {
    if (!cache_) build();
    cache_->start();
    worker_ = std::thread([this] { io_.run(); });
    return *cache_;
  }

  // Stops the cache on its io_context: true when the drained callback ran within `limit`.
  bool stop(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return stop_async().wait_for(limit) == std::future_status::ready;
  }
  std::future<void> stop_async() {
    stopped_ = true;
    auto drained = std::make_shared<std::promise<void>>();
    asio::post(io_, [this, drained] { cache_->stop([drained] { drained->set_value(); }); });
    return drained->get_future();
  }

  // What building the cache throws as std::runtime_error, or "built" when it does not throw.
  std::string construction_error() {
    try {
      build();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "built";
  }

  std::uint16_t port(std::size_t i = 0) const { return cache_->bound_endpoints().at(i).port; }

  std::unique_ptr<TlsClient> connect(const std::string& server_name = "quay.io") {
    return std::make_unique<TlsClient>(port(), server_.ca.certificate_pem(), server_name);
  }

  certs::testing::ScratchDir dir_;
  config::Config config_;
  testing::TestServerTls server_{config_, dir_.path()};
  asio::io_context io_;
  // Connections live on the front door's own loops; what they hand to io_ (upstream requests,
  // the drain's callback) needs it running, as the appliance's supervisor keeps it until drained.
  asio::executor_work_guard<asio::io_context::executor_type> busy_{io_.get_executor()};
  NoNames resolver_{io_};
  std::unique_ptr<RegistryCache> cache_;
  std::thread worker_;
  bool stopped_ = false;
};

// --- building it ------------------------------------------------------------------------------

TEST_F(RegistryCacheTest, BuildingItCreatesTheStoreAndItsIndexUnderStoragePath) {
  ASSERT_FALSE(fs::exists(store_path()));
  build();
  EXPECT_TRUE(fs::is_directory(fs::path(store_path()) / "blobs"));
  EXPECT_TRUE(fs::is_directory(fs::path(store_path()) / "tmp"));
  EXPECT_TRUE(fs::is_regular_file(fs::path(store_path()) / "metadata.db"));
}

// What a fetch was writing when the process died was never verified: it must not survive into
// the next run. Verified blobs stay.
TEST_F(RegistryCacheTest, BuildingItRemovesTheTempFilesOfACrashAndKeepsStoredBlobs) {
  const std::string blob = pattern(1000);
  const std::string digest = sha256_of(blob);
  const fs::path temp = fs::path(store_path()) / "tmp";
  {
    LocalBlobStore earlier(store_path());
    auto writer = earlier.create(digest, blob.size());
    writer->write({reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size()});
    ASSERT_EQ(writer->commit().status, CommitStatus::stored);
  }
  write_file(temp / "123.part", "half a layer");
  write_file(temp / "456.health", "probe");
  fs::create_directories(temp / "789");
  write_file(temp / "789" / "inside", "x");

  build();
  EXPECT_TRUE(fs::is_empty(temp));
  LocalBlobStore after(store_path());
  EXPECT_EQ(after.size(digest), blob.size());
}

// The store and index of an earlier run are the cache's: a blob recorded there for a repository
// is served to it without asking upstream.
TEST_F(RegistryCacheTest, BlobsStoredByAnEarlierRunAreServedWithoutUpstream) {
  const std::string blob = pattern(100 * 1024);
  const std::string digest = sha256_of(blob);
  {
    LocalBlobStore earlier(store_path());
    auto writer = earlier.create(digest, blob.size());
    writer->write({reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size()});
    ASSERT_EQ(writer->commit().status, CommitStatus::stored);
    auto index = MetadataIndex::open(store_path() + "/metadata.db");
    index->put_blob(digest, blob.size(), 1'800'000'000);
    index->link("quay.io", "team/app", digest);
    // It was public then: anonymous access could read it.
    index->put_visibility("quay.io", "team/app", true, 1'800'000'000);
  }

  auto& cache = start();
  auto client = connect();
  client->get("/v2/team/app/blobs/" + digest, "quay.io");
  auto response = client->response();
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_TRUE(response.body() == blob) << response.body().size() << " bytes";
  EXPECT_EQ(cache.counters().blob_hits.value(), 1U);
  EXPECT_EQ(cache.counters().blob_misses.value(), 0U);
  // Visibility read back from the index counts as old: one attempt to recheck it upstream
  // (unresolvable here), then the recorded answer stands.
  EXPECT_LE(resolver_.calls(), 1);
}

TEST_F(RegistryCacheTest, ACaFileThatCannotBeLoadedIsAnErrorNamingIt) {
  {
    SCOPED_TRACE("missing");
    const std::string missing = (dir_.path() / "missing-ca.pem").string();
    config_.registries.at(1).ca_file = missing;
    auto error = construction_error();
    EXPECT_THAT(error, HasSubstr(missing));
    EXPECT_THAT(error, HasSubstr("ghcr.io"));
  }
  {
    SCOPED_TRACE("not PEM");
    const std::string garbage = (dir_.path() / "garbage-ca.pem").string();
    write_file(garbage, "not a certificate\n");
    config_.registries.at(1).ca_file = garbage;
    EXPECT_THAT(construction_error(), HasSubstr(garbage));
  }
}

TEST_F(RegistryCacheTest, APasswordFileThatCannotBeReadIsAnErrorNamingIt) {
  const std::string missing = (dir_.path() / "missing-secret").string();
  config_.registries.at(0).credentials = config::Credentials{"bot", missing};
  auto error = construction_error();
  EXPECT_THAT(error, HasSubstr(missing));
  EXPECT_THAT(error, HasSubstr("quay.io"));
}

TEST_F(RegistryCacheTest, AReadablePasswordFileIsAccepted) {
  const std::string secret = (dir_.path() / "secret").string();
  write_file(secret, "hunter2\n");
  config_.registries.at(0).credentials = config::Credentials{"bot", secret};
  EXPECT_EQ(construction_error(), "built");
}

TEST_F(RegistryCacheTest, AStoragePathThatCannotBeCreatedIsAnErrorNamingIt) {
  const fs::path file = dir_.path() / "a-file";
  write_file(file, "x");
  config_.storage.path = (file / "store").string();
  EXPECT_THAT(construction_error(), HasSubstr(file.string()));
}

// --- the service ------------------------------------------------------------------------------

TEST_F(RegistryCacheTest, StartBindsEveryListenAddressAndReportsItsRealPort) {
  config_.proxy.listen = {*core::parse_endpoint("127.0.0.1:0"),
                          *core::parse_endpoint("127.0.0.1:0")};
  build();
  EXPECT_TRUE(cache_->bound_endpoints().empty());
  auto& cache = start();
  ASSERT_EQ(cache.bound_endpoints().size(), 2U);
  std::set<std::uint16_t> ports;
  for (const auto& endpoint : cache.bound_endpoints()) {
    EXPECT_EQ(endpoint.address.to_string(), "127.0.0.1");
    EXPECT_NE(endpoint.port, 0);
    ports.insert(endpoint.port);
    TlsClient client(endpoint.port, server_.ca.certificate_pem(), "quay.io");
    client.get("/v2/", "quay.io");
    EXPECT_EQ(client.response().result_int(), 200);
  }
  EXPECT_EQ(ports.size(), 2U);
  EXPECT_EQ(cache.counters().requests.value(), 2U);
  EXPECT_EQ(cache.front_door_counters().handshakes_completed.value(), 2U);
}

TEST_F(RegistryCacheTest, MaxConnectionsPerClientReachesTheFrontDoor) {
  config_.proxy.max_connections_per_client = 1;
  auto& cache = start();
  auto first = connect();
  EXPECT_ANY_THROW(connect());  // closed before its handshake
  EXPECT_EQ(cache.front_door_counters().connections_refused_per_client.value(), 1U);
  EXPECT_EQ(cache.open_connections(), 1U);
}

// The handover: the cache keeps serving, and only what its health check answer says changes.
TEST_F(RegistryCacheTest, BeginLeavingIsToldToHealthChecksWhileServingGoesOn) {
  const std::string check(health::kHealthCheckUserAgent);
  const std::string leaving_header(health::kLeavingHeader);
  auto& cache = start();
  auto client = connect();
  client->get("/v2/", "quay.io", check);
  auto before = client->response();
  EXPECT_EQ(before.result_int(), 200);
  EXPECT_EQ(before.count(leaving_header), 0U);
  EXPECT_FALSE(cache.leaving());

  cache.begin_leaving();
  EXPECT_TRUE(cache.leaving());
  client->get("/v2/", "quay.io", check);
  auto after = client->response();
  EXPECT_EQ(after.result_int(), 200);
  EXPECT_EQ(after[leaving_header], health::kLeavingShutdown);
  client->get("/v2/", "quay.io");
  EXPECT_EQ(client->response().result_int(), 200);

  EXPECT_EQ(cache.counters().health_checks.value(), 2U);
  EXPECT_EQ(cache.counters().requests.value(), 1U);
}

TEST_F(RegistryCacheTest, StopWithNothingInFlightCallsBackAndClosesTheListener) {
  auto& cache = start();
  const std::uint16_t bound = port();
  EXPECT_TRUE(stop());
  EXPECT_EQ(cache.open_connections(), 0U);
  asio::io_context client_io;
  asio::ip::tcp::socket socket(client_io);
  error_code ec;
  socket.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), bound), ec);
  EXPECT_EQ(ec, asio::error::connection_refused) << ec.message();
}

// A request that has begun when the stop comes is answered; the callback waits for it.
TEST_F(RegistryCacheTest, StopLetsARequestInProgressFinishThenCallsBack) {
  auto& cache = start();
  auto client = connect();
  client->send("GET /v2/ HTTP/1.1\r\nHost: quay.io\r\n");
  ASSERT_TRUE(core::testing::eventually([&] { return cache.open_connections() == 1; }));

  auto drained = stop_async();
  EXPECT_EQ(drained.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  client->send("User-Agent: test\r\n\r\n");
  auto response = client->response();
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_FALSE(response.keep_alive());
  EXPECT_EQ(client->ending(), "close_notify");
  client.reset();
  EXPECT_EQ(drained.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(cache.open_connections(), 0U);
}

// upstream_counters(i) is the client of config.registries[i]: a request that goes upstream for
// one registry moves its counters and not the other's.
TEST_F(RegistryCacheTest, UpstreamCountersBelongToTheirConfiguredRegistry) {
  auto& cache = start();
  auto client = connect("ghcr.io");
  client->get("/v2/team/app/tags/list", "ghcr.io");
  EXPECT_EQ(client->response().result_int(), 503);  // the name does not resolve
  EXPECT_GE(cache.upstream_counters(1).failures_resolve.value(), 1U);
  EXPECT_EQ(cache.upstream_counters(0).failures_resolve.value(), 0U);
  EXPECT_EQ(cache.upstream_counters(0).requests.value(), 0U);
  EXPECT_THROW(cache.upstream_counters(2), std::out_of_range);
}

TEST_F(RegistryCacheTest, StorageReportsTheStoreOnceStarted) {
  auto& cache = start();
  EXPECT_EQ(cache.storage().problem(), StoreHealth::Problem::none);
  auto report = cache.storage().last();
  EXPECT_TRUE(report.health.ok()) << report.health.reason;
  EXPECT_TRUE(report.health.free_bytes.has_value());
  EXPECT_NE(report.checked_at, core::WallClock::TimePoint{});
  auto client = connect();
  client->get("/v2/", "quay.io", std::string(health::kHealthCheckUserAgent));
  EXPECT_EQ(client->response()[health::kStorageHeader], health::kStorageOk);
}

// storage.min_free reaches the monitor: a store with less free space is full for the DNS side.
TEST_F(RegistryCacheTest, AStoreWithLessThanMinFreeIsReportedFull) {
  config_.storage.min_free = std::uint64_t{1} << 62;
  auto& cache = start();
  EXPECT_EQ(cache.storage().problem(), StoreHealth::Problem::full);
  auto client = connect();
  client->get("/v2/", "quay.io", std::string(health::kHealthCheckUserAgent));
  EXPECT_EQ(client->response()[health::kStorageHeader],
            storage_header_value(StoreHealth::Problem::full));
}

}  // namespace
}  // namespace pullthrough::proxy
