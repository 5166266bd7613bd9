// The fixture of the RegistryProxy tests: a TLS front door on port 0 serving the proxy, with the
// real store, index, fetches and manifest cache behind it, a scripted upstream, fake clocks, and
// clients that speak raw HTTP/1.1 over TLS.
#pragma once

#include "core/asio.hpp"

#include <array>
#include <atomic>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "proxy/front_door.hpp"
#include "proxy/local_blob_store.hpp"
#include "proxy/media_types.hpp"
#include "proxy/registry_proxy.hpp"
#include "tests/core/eventually.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/scripted_upstream.hpp"
#include "tests/proxy/server_tls_fixture.hpp"
#include "tests/proxy/test_support.hpp"
#include "tests/proxy/tls_client.hpp"

namespace pullthrough::proxy::testing {

namespace fs = std::filesystem;
using Response = http::response<http::string_body>;

inline const std::string kLayer = pattern(std::size_t{300} * 1024);
inline const std::string kLayerDigest = sha256_of(kLayer);
inline const std::string kManifest =
    R"({"schemaVersion":2,"mediaType":")" + std::string(kOciManifest) + R"(","layers":[]})";

inline ScriptedReply blob_reply(const std::string& body) {
  ScriptedReply reply;
  reply.body = body;
  reply.fields.emplace_back("Content-Type", "application/octet-stream");
  return reply;
}

// One TLS connection to the proxy, as a pull client holds it.
using Client = testing::TlsClient;

class RegistryProxyTest : public ::testing::Test {
 protected:
  virtual RegistryProxyLimits limits() const {
    RegistryProxyLimits limits;
    limits.max_header_bytes = 4096;
    limits.request_timeout = std::chrono::seconds(5);
    limits.write_timeout = std::chrono::seconds(5);
    return limits;
  }

  void SetUp() override {
    root_ = testing::test_directory("registry-proxy");
    config_ = *config::load_string(
                   "proxy: {listen: [\"127.0.0.1:0\"], allow: [\"127.0.0.0/8\"]}\n"
                   "registries:\n"
                   "  - {host: quay.io}\n"
                   "  - {host: ghcr.io}\n",
                   "t.yaml")
                   .config;
    server_ = std::make_unique<testing::TestServerTls>(config_, root_);
    store_ = std::make_unique<LocalBlobStore>((root_ / "store").string());
    index_ = MetadataIndex::open((root_ / "metadata.db").string());
    recorder_ = std::make_unique<AccessRecorder>(*index_, disk_.get_executor(), clock_);
    fetches_ = std::make_unique<BlobFetches>(io_, disk_.get_executor(), *store_, *index_, guard_,
                                             clock_, fetch_counters_);
    manifests_ = std::make_unique<ManifestCache>(*store_, *index_, *recorder_, guard_, clock_,
                                                 disk_.get_executor(), manifest_counters_);
    RegistryProxyParts parts;
    parts.config = &config_;
    parts.upstreams.emplace(&config_.registries.at(0), &upstream_);
    blobs_ = std::make_unique<CachedBlobs>(*store_, *index_, *fetches_, *recorder_, guard_);
    parts.blobs = blobs_.get();
    parts.manifests = manifests_.get();
    parts.counters = &counters_;
    parts.leaving = &leaving_;
    parts.access = &access_;
    proxy_ = std::make_unique<RegistryProxy>(std::move(parts), limits());
    front_door_ = std::make_unique<proxy::TlsFrontDoor>(
        io_, config_, server_->tls,
        [this](proxy::TlsConnection connection) { return proxy_->serve(std::move(connection)); });
    front_door_->start();
    port_ = front_door_->bound_endpoints().at(0).port;
    worker_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (!stopped_) {
      EXPECT_LT(stop_front_door(), std::chrono::seconds(10)) << "the front door did not drain";
    }
    asio::post(io_, [&] { fetches_.reset(); });
    worker_.join();
    disk_.join();
    fs::remove_all(root_);
  }

  // Stops the front door and waits for it to drain: how long that took (10 s when it did not).
  std::chrono::steady_clock::duration stop_front_door() {
    stopped_ = true;
    auto drained = std::make_shared<std::promise<void>>();
    auto start = std::chrono::steady_clock::now();
    asio::post(io_, [this, drained] { front_door_->stop([drained] { drained->set_value(); }); });
    if (drained->get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      return std::chrono::seconds(10);
    }
    return std::chrono::steady_clock::now() - start;
  }

  std::unique_ptr<Client> connect(const std::string& server_name = "quay.io",
                                  int receive_buffer = 0) {
    return std::make_unique<Client>(port_, server_->ca.certificate_pem(), server_name,
                                    receive_buffer);
  }

  // One request on a fresh connection.
  Response get(const std::string& target, const std::string& extra_fields = "") {
    auto client = connect();
    client->request("GET", target, extra_fields);
    return client->response();
  }

  static std::string blob_path(const std::string& repository, const std::string& digest) {
    return "/v2/" + repository + "/blobs/" + digest;
  }

  fs::path root_;
  config::Config config_;
  std::unique_ptr<testing::TestServerTls> server_;
  core::testing::FakeWallClock clock_;
  core::testing::FakeClock steady_clock_;
  AccessBooks access_{steady_clock_};
  asio::io_context io_;
  asio::thread_pool disk_{1};
  std::unique_ptr<LocalBlobStore> store_;
  std::unique_ptr<MetadataIndex> index_;
  BlobFetchCounters fetch_counters_;
  ManifestCounters manifest_counters_;
  RegistryCounters counters_;
  std::atomic<bool> leaving_{false};
  ContentGuard guard_;
  std::unique_ptr<AccessRecorder> recorder_;
  std::unique_ptr<BlobFetches> fetches_;
  std::unique_ptr<ManifestCache> manifests_;
  std::unique_ptr<CachedBlobs> blobs_;
  // An anonymous registry that has nothing: `GET /v2/` answers 200, everything else 404.
  ScriptedUpstream upstream_{[](const UpstreamRequest& request) {
    return status_reply(request.target == "/v2/" ? 200 : 404);
  }};
  std::unique_ptr<RegistryProxy> proxy_;
  std::unique_ptr<proxy::TlsFrontDoor> front_door_;
  std::thread worker_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace pullthrough::proxy::testing
