#include "proxy/metrics.hpp"

#include "core/asio.hpp"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "certs/authority.hpp"
#include "certs/leaf_store.hpp"
#include "config/loader.hpp"
#include "tests/proxy/server_tls_fixture.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// Fails every lookup: nothing here goes upstream.
class NoResolver final : public core::HostResolver {
 public:
  void resolve(std::string, std::function<void(core::ResolveResult)> done) override {
    done(core::ResolveResult{{}, "not in this test"});
  }
};

// A real cache over a scratch store, started so that its store has been checked once.
class ProxyMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::test_directory("proxy-metrics");
    config_ = *config::load_string("storage: {path: " + (root_ / "store").string() +
                                       ", min_free: 1MiB}\n"
                                       "proxy: {listen: [\"127.0.0.1:0\"]}\n"
                                       "registries:\n"
                                       "  - {host: quay.io}\n"
                                       "  - {host: ghcr.io}\n",
                                   "t.yaml")
                   .config;
    server_ = std::make_unique<testing::TestServerTls>(config_, root_);
    cache_ = std::make_unique<RegistryCache>(io_, config_, server_->tls, resolver_,
                                             std::vector<core::IpAddress>{});
    cache_->start();
  }

  void TearDown() override {
    EXPECT_TRUE(testing::stop_and_drain(io_, *cache_));
    cache_.reset();
    fs::remove_all(root_);
  }

  std::string render() {
    core::MetricsWriter w;
    write_metrics(w, *cache_, server_->tls, config_);
    return w.take();
  }

  fs::path root_;
  config::Config config_;
  asio::io_context io_;
  NoResolver resolver_;
  std::unique_ptr<testing::TestServerTls> server_;
  std::unique_ptr<RegistryCache> cache_;
};

TEST_F(ProxyMetricsTest, EachUpstreamRegistryIsALabelOfOneFamily) {
  auto text = render();
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_upstream_requests_total counter\n"
                              "pullthrough_upstream_requests_total{registry=\"quay.io\"} 0\n"
                              "pullthrough_upstream_requests_total{registry=\"ghcr.io\"} 0\n"));
}

TEST_F(ProxyMetricsTest, TheStoreAsLastChecked) {
  auto text = render();
  EXPECT_THAT(text, HasSubstr("\npullthrough_storage_healthy 1\n"));
  EXPECT_THAT(text, HasSubstr("\npullthrough_storage_min_free_bytes 1048576\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_storage_free_bytes gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_storage_filesystem_size_bytes gauge\n"));
}

TEST_F(ProxyMetricsTest, TheCachesCountersAndGauges) {
  auto text = render();
  EXPECT_THAT(text, HasSubstr("\npullthrough_proxy_requests_total 0\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_proxy_blob_"));
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_proxy_manifest_"));
  EXPECT_THAT(text, HasSubstr("\npullthrough_proxy_front_door_handshakes_completed_total 0\n"));
  EXPECT_THAT(text, HasSubstr("\npullthrough_proxy_listener_connections_accepted_total 0\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE pullthrough_proxy_tls_"));
  EXPECT_THAT(text, HasSubstr("\npullthrough_proxy_connections_open 0\n"));
  EXPECT_THAT(text, HasSubstr("\npullthrough_proxy_blob_fetches_in_flight 0\n"));
  // The resolver and the CA page are not the cache's: the app writes them.
  EXPECT_THAT(text, Not(HasSubstr("pullthrough_upstream_resolver")));
  EXPECT_THAT(text, Not(HasSubstr("pullthrough_ca_page")));
}

}  // namespace
}  // namespace pullthrough::proxy
