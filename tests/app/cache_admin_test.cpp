#include "app/cache_admin.hpp"

#include "core/asio.hpp"

#include <filesystem>
#include <memory>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "app/admin.hpp"
#include "app/cache_command.hpp"
#include "config/loader.hpp"
#include "proxy/digester.hpp"
#include "proxy/local_blob_store.hpp"
#include "proxy/media_types.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::app {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(QueryValueTest, DecodesPercentEncodingAndRefusesBrokenEscapes) {
  EXPECT_EQ(query_value("ref=quay.io%2Forg%2Fapp%3Av1&dry_run=1", "ref"), "quay.io/org/app:v1");
  EXPECT_EQ(query_value("ref=quay.io%2Forg%2Fapp%3Av1&dry_run=1", "dry_run"), "1");
  EXPECT_EQ(query_value("a=1&glob=", "glob"), "");
  EXPECT_EQ(query_value("glob", "glob"), "");
  EXPECT_FALSE(query_value("a=1", "glob"));
  EXPECT_FALSE(query_value("glob=%2", "glob"));
  EXPECT_FALSE(query_value("glob=%zz", "glob"));
  EXPECT_FALSE(query_value("globs=1", "glob"));
  const std::string ref = "registry-1.docker.io/library/*:*-rc* @sha256:ab&=%";
  EXPECT_EQ(query_value("x=1&ref=" + percent_encode(ref), "ref"), ref);
  EXPECT_EQ(percent_encode("a-b.c_d~e"), "a-b.c_d~e");
}

TEST(HumanSizeTest, UsesBinaryUnitsWithOneDecimal) {
  EXPECT_EQ(human_size(0), "0 B");
  EXPECT_EQ(human_size(1023), "1023 B");
  EXPECT_EQ(human_size(1536), "1.5 KiB");
  EXPECT_EQ(human_size(std::uint64_t{5} << 30), "5.0 GiB");
}

// The admin service over a real Retention on a scratch store: requests go through the async
// handler as the admin listener sends them.
class CacheAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = proxy::testing::test_directory("cache-admin");
    store_ = std::make_unique<proxy::LocalBlobStore>((root_ / "store").string());
    index_ = proxy::MetadataIndex::open((root_ / "metadata.db").string());
    retention_ = std::make_unique<proxy::Retention>(io_, disk_.get_executor(), *index_, *store_,
                                                    guard_, clock_, proxy::RetentionSettings{});
    config_.storage.path = root_.string();
  }
  void TearDown() override {
    disk_.join();
    retention_.reset();
    index_.reset();
    fs::remove_all(root_);
  }

  // An image of one layer tagged in quay.io/org/app.
  std::string image(const std::string& tag) {
    auto put = [&](const std::string& body) {
      proxy::Digester digester("sha256");
      digester.update({reinterpret_cast<const std::uint8_t*>(body.data()), body.size()});
      auto digest = digester.finish();
      auto writer = store_->create(digest, body.size());
      writer->write({reinterpret_cast<const std::uint8_t*>(body.data()), body.size()});
      EXPECT_EQ(writer->commit().status, proxy::CommitStatus::stored);
      return digest;
    };
    auto layer = put("layer of " + tag);
    index_->put_blob(layer, 12, proxy::unix_seconds(clock_));
    std::string body =
        R"({"schemaVersion":2,"config":{"digest":")" + layer + R"(","size":12},"layers":[]})";
    auto manifest = put(body);
    index_->put_manifest(manifest, std::string(proxy::kOciManifest), body.size(), {layer});
    index_->link("quay.io", "org/app", manifest, 0);
    index_->put_tag("quay.io", "org/app", tag, manifest, proxy::unix_seconds(clock_));
    return manifest;
  }

  AdminSources sources() {
    AdminSources s;
    s.config = &config_;
    s.clock = &clock_;
    s.metrics = &metrics_;
    s.retention = retention_.get();
    return s;
  }

  core::HttpResponse send(const AdminSources& s, http::verb method, const std::string& target,
                          const std::string& authorization = {}) {
    core::HttpRequest request{method, target, 11};
    if (!authorization.empty()) request.set(http::field::authorization, authorization);
    auto handler = make_admin_service(s);
    auto answer = asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<core::HttpResponse> {
          core::HttpExchange exchange{request, {}, {}};
          co_return co_await handler(exchange);
        },
        asio::use_future);
    io_.restart();
    io_.run();
    return answer.get();
  }

  fs::path root_;
  config::Config config_ = config::defaults();
  core::MetricsRegistry metrics_;
  core::testing::FakeWallClock clock_;
  asio::io_context io_;
  asio::thread_pool disk_{1};
  std::unique_ptr<proxy::LocalBlobStore> store_;
  std::unique_ptr<proxy::MetadataIndex> index_;
  proxy::ContentGuard guard_;
  std::unique_ptr<proxy::Retention> retention_;
};

TEST_F(CacheAdminTest, ListsReferencesAndUsageAsJsonWithTheFieldsTheCliPrints) {
  auto digest = image("v1");
  auto refs = send(sources(), http::verb::get, "/cache/refs");
  ASSERT_EQ(refs.result(), http::status::ok) << refs.body();
  auto json = nlohmann::json::parse(refs.body());
  ASSERT_EQ(json.size(), 1U);
  EXPECT_EQ(json[0]["ref"], "quay.io/org/app:v1");
  EXPECT_EQ(json[0]["digest"], digest);
  EXPECT_GT(json[0]["size"].get<std::uint64_t>(), 12U);
  EXPECT_EQ(json[0]["unique_size"], json[0]["size"]);
  EXPECT_EQ(json[0]["pinned"], false);
  EXPECT_TRUE(json[0]["rule"].is_null());
  EXPECT_THAT(format_refs(refs.body()), HasSubstr("quay.io/org/app:v1"));

  auto filtered =
      send(sources(), http::verb::get, "/cache/refs?glob=" + percent_encode("ghcr.io/**"));
  EXPECT_EQ(nlohmann::json::parse(filtered.body()).size(), 0U);
  auto bad = send(sources(), http::verb::get, "/cache/refs?glob=" + percent_encode("quay.io//x"));
  EXPECT_EQ(bad.result(), http::status::bad_request);

  auto usage = send(sources(), http::verb::get, "/cache/usage");
  ASSERT_EQ(usage.result(), http::status::ok);
  auto du = nlohmann::json::parse(usage.body());
  EXPECT_EQ(du["total"], json[0]["size"]);
  EXPECT_EQ(du["by_registry"]["quay.io"], json[0]["size"]);
  EXPECT_EQ(du["evictable"], du["total"]);
  EXPECT_THAT(format_usage(usage.body()), HasSubstr("no max_size"));
}

TEST_F(CacheAdminTest, PinsRemovalsAndCollectionsChangeTheCache) {
  auto digest = image("v1");
  image("v2");
  auto pinned =
      send(sources(), http::verb::post, "/cache/pins?ref=" + percent_encode("quay.io/org/app:v1"));
  EXPECT_EQ(pinned.result(), http::status::ok);
  EXPECT_THAT(pinned.body(), HasSubstr("pinned quay.io/org/app:v1"));
  auto pins = nlohmann::json::parse(send(sources(), http::verb::get, "/cache/pins").body());
  ASSERT_EQ(pins.size(), 1U);
  EXPECT_EQ(pins[0]["pattern"], "quay.io/org/app:v1");
  EXPECT_EQ(send(sources(), http::verb::post, "/cache/pins?ref=" + percent_encode("quay.io/x@nope"))
                .result(),
            http::status::bad_request);

  auto dry = send(sources(), http::verb::post,
                  "/cache/rm?ref=" + percent_encode("quay.io/org/app:v2") + "&dry_run=1");
  ASSERT_EQ(dry.result(), http::status::ok) << dry.body();
  EXPECT_THAT(format_collection(dry.body()), HasSubstr("would remove quay.io/org/app:v2"));
  EXPECT_TRUE(index_->tag("quay.io", "org/app", "v2"));
  auto removed =
      send(sources(), http::verb::post, "/cache/rm?ref=" + percent_encode("quay.io/org/app:v2"));
  ASSERT_EQ(removed.result(), http::status::ok);
  EXPECT_FALSE(index_->tag("quay.io", "org/app", "v2"));
  EXPECT_EQ(
      send(sources(), http::verb::post, "/cache/rm?ref=" + percent_encode("quay.io/org/app:v2"))
          .result(),
      http::status::not_found);

  auto gc = send(sources(), http::verb::post, "/cache/gc");
  ASSERT_EQ(gc.result(), http::status::ok);
  EXPECT_EQ(nlohmann::json::parse(gc.body())["references"].size(), 0U);  // no rules: kept
  EXPECT_TRUE(store_->size(digest));
  EXPECT_EQ(send(sources(), http::verb::get, "/cache/gc").result(),
            http::status::method_not_allowed);
  EXPECT_EQ(send(sources(), http::verb::delete_,
                 "/cache/pins?ref=" + percent_encode("quay.io/org/app:v1"))
                .result(),
            http::status::ok);
  EXPECT_EQ(send(sources(), http::verb::delete_,
                 "/cache/pins?ref=" + percent_encode("quay.io/org/app:v1"))
                .result(),
            http::status::not_found);
}

TEST_F(CacheAdminTest, ChangesOverANonLoopbackListenerNeedTheToken) {
  image("v1");
  auto s = sources();
  s.changes_need_token = true;
  const std::string pin = "/cache/pins?ref=" + percent_encode("quay.io/org/app:v1");
  // No token configured: changes are refused, reads are not.
  auto refused = send(s, http::verb::post, pin);
  EXPECT_EQ(refused.result(), http::status::forbidden);
  EXPECT_THAT(refused.body(), HasSubstr("admin.token_file"));
  EXPECT_EQ(send(s, http::verb::get, "/cache/refs").result(), http::status::ok);

  s.token = "s3cret-token";
  EXPECT_EQ(send(s, http::verb::post, pin).result(), http::status::forbidden);
  EXPECT_EQ(send(s, http::verb::post, pin, "Bearer wrong-token!").result(),
            http::status::forbidden);
  EXPECT_EQ(send(s, http::verb::post, pin, "Bearer s3cret-token").result(), http::status::ok);
  EXPECT_EQ(send(s, http::verb::delete_, pin, "Bearer s3cret-token").result(), http::status::ok);
  EXPECT_TRUE(index_->pins().empty());

  // A process without the cache says where to ask.
  s.retention = nullptr;
  auto elsewhere = send(s, http::verb::get, "/cache/refs");
  EXPECT_EQ(elsewhere.result(), http::status::not_found);
  EXPECT_THAT(elsewhere.body(), HasSubstr("proxy role"));
}

}  // namespace
}  // namespace pullthrough::app
