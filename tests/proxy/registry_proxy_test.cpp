// RegistryProxy as a client sees it: a TLS connection to the front door, raw HTTP/1.1 on it, and
// the real store, index, fetches and manifest cache behind it, with a scripted upstream.
#include "core/asio.hpp"

#include <array>
#include <atomic>
#include <chrono>
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
#include "tests/core/eventually.hpp"
#include "tests/core/fake_clock.hpp"
#include "tests/proxy/registry_proxy_fixture.hpp"
#include "tests/proxy/scripted_upstream.hpp"
#include "tests/proxy/server_tls_fixture.hpp"
#include "tests/proxy/test_support.hpp"
#include "tests/proxy/tls_client.hpp"

namespace pullthrough::proxy {
namespace {

using testing::blob_reply;
using testing::Client;
using testing::kLayer;
using testing::kLayerDigest;
using testing::kManifest;
using testing::manifest_reply;
using testing::pattern;
using testing::RegistryProxyTest;
using testing::Response;
using testing::ScriptedReply;
using testing::sha256_of;
using testing::status_reply;
namespace fs = std::filesystem;

// --- the connection -------------------------------------------------------------------------

TEST_F(RegistryProxyTest, BaseAnswersWithTheApiVersion) {
  auto response = get("/v2/");
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), "{}");
  EXPECT_EQ(response["Docker-Distribution-API-Version"], "registry/2.0");
  EXPECT_EQ(response[http::field::content_type], "application/json");
  EXPECT_EQ(counters_.requests.value(), 1U);
}

TEST_F(RegistryProxyTest, HealthChecksAreCountedApartFromClientRequests) {
  auto client = connect();
  client->send(
      "GET /v2/ HTTP/1.1\r\nHost: quay.io\r\nUser-Agent: pullthrough-health-check\r\n\r\n");
  EXPECT_EQ(client->response().result_int(), 200);
  client->request("GET", "/v2/");
  EXPECT_EQ(client->response().result_int(), 200);
  EXPECT_EQ(counters_.health_checks.value(), 1U);
  EXPECT_EQ(counters_.requests.value(), 1U);
}

TEST_F(RegistryProxyTest, BaseTellsHealthChecksWhenTheCacheIsLeaving) {
  auto health_check = [&] {
    auto client = connect();
    client->send(
        "GET /v2/ HTTP/1.1\r\nHost: quay.io\r\nUser-Agent: pullthrough-health-check\r\n\r\n");
    return client->response();
  };
  EXPECT_EQ(health_check().count("Pullthrough-Leaving"), 0U);
  leaving_ = true;
  auto response = health_check();
  // Still a 200: only the DNS side's check reads the field.
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response["Pullthrough-Leaving"], "shutdown");
  // Clients get upstream's answer, without the field.
  EXPECT_EQ(get("/v2/").count("Pullthrough-Leaving"), 0U);
}

TEST_F(RegistryProxyTest, KeepAliveServesRequestsInTurnAndAnswersCloseNotify) {
  auto client = connect();
  for (int i = 0; i < 3; ++i) {
    client->request("GET", "/v2/");
    EXPECT_EQ(client->response().result_int(), 200);
  }
  EXPECT_EQ(client->shutdown(), "close_notify");
  EXPECT_EQ(counters_.requests.value(), 3U);
}

TEST_F(RegistryProxyTest, EmptyLinesBeforeARequestAreIgnored) {
  auto client = connect();
  client->send("\r\n");
  client->send("\n\r\nGET /v2/ HTTP/1.1\r\nHost: quay.io\r\n\r\n");
  EXPECT_EQ(client->response().result_int(), 200);
  EXPECT_EQ(counters_.requests_rejected.value(), 0U);
}

TEST_F(RegistryProxyTest, EmptyLinesAloneThenCloseNotifyAreAnsweredWithCloseNotify) {
  auto client = connect();
  client->send("\n");
  EXPECT_EQ(client->shutdown(), "close_notify");
  EXPECT_EQ(counters_.requests_rejected.value(), 0U);
}

TEST_F(RegistryProxyTest, CloseNotifyInTheMiddleOfARequestIsAnsweredWithCloseNotify) {
  auto client = connect();
  client->send("GET /v2/ HTTP/1.1\r\nHost: qu");
  EXPECT_EQ(client->shutdown(), "close_notify");
  EXPECT_EQ(counters_.requests.value(), 0U);
}

TEST_F(RegistryProxyTest, BytesThatAreNotHttpGet400ThenCloseNotify) {
  auto client = connect();
  client->send("\x16\x03\x01 hello\r\n\r\n");
  auto response = client->response();
  EXPECT_EQ(response.result_int(), 400);
  EXPECT_NE(response.body().find("malformed request"), std::string::npos);
  EXPECT_EQ(response[http::field::connection], "close");
  EXPECT_EQ(client->ending(), "close_notify");
  EXPECT_EQ(counters_.requests_rejected.value(), 1U);
}

TEST_F(RegistryProxyTest, OversizedHeaderGets431ThenCloseNotify) {
  auto client = connect();
  client->request("GET", "/v2/", "X-Padding: " + std::string(5000, 'a') + "\r\n");
  auto response = client->response();
  EXPECT_EQ(response.result_int(), 431);
  EXPECT_EQ(client->ending(), "close_notify");
  EXPECT_EQ(counters_.requests_rejected.value(), 1U);
}

TEST_F(RegistryProxyTest, EndlessEmptyLinesCountAgainstTheHeaderLimit) {
  auto client = connect();
  client->send(std::string(5000, '\n'));
  EXPECT_EQ(client->response().result_int(), 431);
}

TEST_F(RegistryProxyTest, HostNamingAnotherRegistryIsMisdirected) {
  auto client = connect();
  client->send("GET /v2/ HTTP/1.1\r\nHost: ghcr.io\r\n\r\n");
  auto response = client->response();
  EXPECT_EQ(response.result_int(), 421);
  EXPECT_NE(response.body().find("for quay.io, not ghcr.io"), std::string::npos);
  EXPECT_EQ(client->ending(), "close_notify");
}

TEST_F(RegistryProxyTest, PullsHaveNoBody) {
  auto client = connect();
  client->send("GET /v2/a/manifests/x HTTP/1.1\r\nHost: quay.io\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(client->response().result_int(), 400);
  EXPECT_EQ(client->ending(), "close_notify");
  client = connect();
  client->send("GET /v2/ HTTP/1.1\r\nHost: quay.io\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(client->response().result_int(), 400);
  EXPECT_EQ(counters_.requests_rejected.value(), 2U);
  EXPECT_TRUE(upstream_.seen().empty());
  EXPECT_TRUE(upstream_.forwarded().empty());
}

TEST_F(RegistryProxyTest, TraversalInARepositoryNameNeverReachesUpstreamOrTheStore) {
  for (const std::string& target : std::vector<std::string>{
           "/v2/../../etc/blobs/" + kLayerDigest, "/v2/a/%2e%2e/b/manifests/latest",
           "/v2/a//b/manifests/latest", "/v2/a/blobs/sha256:..%2f..%2fx"}) {
    auto response = get(target);
    EXPECT_GE(response.result_int(), 400) << target;
    EXPECT_LT(response.result_int(), 500) << target;
  }
  EXPECT_TRUE(upstream_.seen().empty());
  EXPECT_EQ(counters_.requests_rejected.value(), 4U);
}

// Regression: this answered 400 MANIFEST_INVALID. Refused before the store or upstream is asked,
// with the 404 that clients and the spec's conformance tests expect.
TEST_F(RegistryProxyTest, AManifestThatCannotExistIs404ManifestUnknown) {
  const std::string target = "/v2/team/app/manifests/.INVALID_MANIFEST_NAME";
  auto client = connect();
  client->request("HEAD", target);
  auto head = client->response(true);
  EXPECT_EQ(head.result_int(), 404);
  client->request("GET", target);
  auto response = client->response();
  EXPECT_EQ(response.result_int(), 404);
  EXPECT_NE(response.body().find("MANIFEST_UNKNOWN"), std::string::npos) << response.body();
  EXPECT_EQ(get("/v2/team/app/blobs/sha256:short").result_int(), 404);
  EXPECT_TRUE(upstream_.seen().empty());
}

// --- blobs ----------------------------------------------------------------------------------

TEST_F(RegistryProxyTest, BlobMissIsFetchedOnceThenServedFromTheCache) {
  upstream_.set_script([](const UpstreamRequest&) { return blob_reply(kLayer); });
  auto first = get(blob_path("team/app", kLayerDigest));
  ASSERT_EQ(first.result_int(), 200);
  EXPECT_EQ(first.body(), kLayer);
  EXPECT_EQ(first["Docker-Content-Digest"], kLayerDigest);
  EXPECT_EQ(first["Pullthrough-Cache"], "miss");

  auto second = get(blob_path("team/app", kLayerDigest));
  ASSERT_EQ(second.result_int(), 200);
  EXPECT_EQ(second.body(), kLayer);
  EXPECT_EQ(second["Pullthrough-Cache"], "hit");
  EXPECT_EQ(upstream_.count(http::verb::get), 1U);
  EXPECT_EQ(counters_.blob_hits.value(), 1U);
  EXPECT_EQ(counters_.blob_misses.value(), 1U);
  EXPECT_EQ(counters_.bytes_from_cache.value(), kLayer.size());
}

// A hit is recorded as the blob's last use, for retention, by the disk pool.
TEST_F(RegistryProxyTest, ABlobHitIsRecordedAsItsLastUse) {
  upstream_.set_script([](const UpstreamRequest&) { return blob_reply(kLayer); });
  ASSERT_EQ(get(blob_path("team/app", kLayerDigest)).result_int(), 200);
  const UnixSeconds stored = index_->blob(kLayerDigest).value().last_access;
  clock_.advance(std::chrono::hours(2));
  ASSERT_EQ(get(blob_path("team/app", kLayerDigest)).result_int(), 200);
  const UnixSeconds hit = unix_seconds(clock_);
  ASSERT_GT(hit, stored);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (index_->blob(kLayerDigest).value().last_access != hit &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(index_->blob(kLayerDigest).value().last_access, hit);
}

TEST_F(RegistryProxyTest, RangesOfACachedBlob) {
  upstream_.set_script([](const UpstreamRequest&) { return blob_reply(kLayer); });
  ASSERT_EQ(get(blob_path("team/app", kLayerDigest)).result_int(), 200);

  auto partial = get(blob_path("team/app", kLayerDigest), "Range: bytes=100-199\r\n");
  EXPECT_EQ(partial.result_int(), 206);
  EXPECT_EQ(partial.body(), kLayer.substr(100, 100));
  EXPECT_EQ(partial[http::field::content_range], "bytes 100-199/" + std::to_string(kLayer.size()));

  auto outside = get(blob_path("team/app", kLayerDigest),
                     "Range: bytes=" + std::to_string(kLayer.size()) + "-\r\n");
  EXPECT_EQ(outside.result_int(), 416);
  EXPECT_EQ(outside[http::field::content_range], "bytes */" + std::to_string(kLayer.size()));
}

TEST_F(RegistryProxyTest, HeadOfACachedBlobHasItsLengthAndNoBody) {
  upstream_.set_script([](const UpstreamRequest&) { return blob_reply(kLayer); });
  ASSERT_EQ(get(blob_path("team/app", kLayerDigest)).result_int(), 200);
  auto client = connect();
  client->request("HEAD", blob_path("team/app", kLayerDigest));
  auto head = client->response(true);
  EXPECT_EQ(head.result_int(), 200);
  EXPECT_EQ(head[http::field::content_length], std::to_string(kLayer.size()));
  // The connection is still in step: the next response is the next request's.
  client->request("GET", "/v2/");
  EXPECT_EQ(client->response().body(), "{}");
}

// A HEAD is answered with the header a GET would get, never a body: here the 416 error body,
// which would otherwise be read as the start of the next response.
TEST_F(RegistryProxyTest, HeadOfAnUnsatisfiableRangeHasNoBody) {
  upstream_.set_script([](const UpstreamRequest&) { return blob_reply(kLayer); });
  ASSERT_EQ(get(blob_path("team/app", kLayerDigest)).result_int(), 200);
  auto client = connect();
  client->request("HEAD", blob_path("team/app", kLayerDigest),
                  "Range: bytes=" + std::to_string(kLayer.size()) + "-\r\n");
  auto head = client->response(true);
  EXPECT_EQ(head.result_int(), 416);
  client->request("GET", "/v2/");
  auto next = client->response();
  EXPECT_EQ(next.result_int(), 200);
  EXPECT_EQ(next.body(), "{}");
}

// A keep-alive connection waiting for its next request does not hold the drain until its
// request timeout (5 s in this fixture, 60 s by default): stopping wakes it, and it says goodbye
// with a close_notify.
TEST_F(RegistryProxyTest, AnIdleConnectionEndsAtOnceWhenTheServiceStops) {
  auto idle = connect();
  idle->request("GET", "/v2/");
  ASSERT_EQ(idle->response().result_int(), 200);
  auto took = stop_front_door();
  // The design's worst case is a post to the connection's strand and one TLS alert, a few
  // milliseconds; half the request timeout leaves room for a loaded machine under ASan.
  EXPECT_LT(took, limits().request_timeout / 2);
  EXPECT_EQ(idle->ending(), "close_notify");
}

TEST_F(RegistryProxyTest, WrongBytesFromUpstreamAreNeverServedNorStored) {
  std::string wrong = kLayer;
  wrong[wrong.size() / 2] ^= 1;
  upstream_.set_script([wrong](const UpstreamRequest&) {
    ScriptedReply reply = blob_reply(wrong);
    reply.announce_length = false;
    return reply;
  });
  // Without an announced length the answer waits for the verdict: a 502, and no byte of it.
  auto response = get(blob_path("team/app", kLayerDigest));
  EXPECT_EQ(response.result_int(), 502);
  EXPECT_NE(response.body().find("hash to"), std::string::npos) << response.body();
  EXPECT_FALSE(store_->size(kLayerDigest).has_value());

  // The next request tries upstream again instead of serving anything stored.
  upstream_.set_script([](const UpstreamRequest&) { return blob_reply(kLayer); });
  EXPECT_EQ(get(blob_path("team/app", kLayerDigest)).body(), kLayer);
  EXPECT_EQ(upstream_.count(http::verb::get), 2U);
}

TEST_F(RegistryProxyTest, WrongBytesDiscoveredWhileStreamingCutTheTransferOff) {
  std::string wrong = kLayer;
  wrong[wrong.size() - 1] ^= 1;
  upstream_.set_script([wrong](const UpstreamRequest&) {
    ScriptedReply reply = blob_reply(wrong);
    reply.piece = std::size_t{32} * 1024;
    reply.pace = std::chrono::milliseconds(5);
    return reply;
  });
  auto client = connect();
  client->request("GET", blob_path("team/app", kLayerDigest));
  // The header and most bytes went out while streaming; the verdict at the end cuts the
  // connection without close_notify, so the client never sees a complete response.
  EXPECT_ANY_THROW(client->response());
  EXPECT_FALSE(store_->size(kLayerDigest).has_value());
  EXPECT_EQ(counters_.transfers_aborted.value(), 1U);
  EXPECT_GT(counters_.bytes_while_fetching.value(), 0U);
}

TEST_F(RegistryProxyTest, BlobUnknownUpstreamIsBlobUnknown) {
  auto response = get(blob_path("team/app", kLayerDigest));
  EXPECT_EQ(response.result_int(), 404);
  EXPECT_NE(response.body().find("BLOB_UNKNOWN"), std::string::npos);
}

TEST_F(RegistryProxyTest, UnreachableUpstreamIs503) {
  upstream_.set_script([](const UpstreamRequest&) {
    ScriptedReply reply;
    reply.unreachable = true;
    return reply;
  });
  auto response = get(blob_path("team/app", kLayerDigest));
  EXPECT_EQ(response.result_int(), 503);
  EXPECT_NE(response.body().find("UNAVAILABLE"), std::string::npos);
  EXPECT_EQ(counters_.upstream_unavailable.value(), 1U);
}

TEST_F(RegistryProxyTest, ABlobCachedForOneRepositoryIsServedToAnotherOnlyIfUpstreamSaysSo) {
  upstream_.set_script([](const UpstreamRequest&) { return blob_reply(kLayer); });
  ASSERT_EQ(get(blob_path("team/public", kLayerDigest)).result_int(), 200);

  // Upstream does not let this repository have it: not served, though it is stored.
  upstream_.set_script([](const UpstreamRequest&) { return status_reply(404); });
  EXPECT_EQ(get(blob_path("team/private", kLayerDigest)).result_int(), 404);

  // Upstream confirms: served from the cache, with a HEAD and no second GET.
  upstream_.set_script([](const UpstreamRequest& request) {
    return request.method == http::verb::head ? status_reply(200) : status_reply(500);
  });
  auto response = get(blob_path("team/other", kLayerDigest));
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response["Pullthrough-Cache"], "hit");
  EXPECT_EQ(response.body(), kLayer);
  auto seen = upstream_.seen();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().method, http::verb::head);
  EXPECT_EQ(seen.back().repository, "team/other");
}

// A client that reads part of a blob and then stops reading must not hold its connection, its
// file handle or its slot: the write timeout ends the transfer. (Regression: after the first
// chunk went out, the direct TLS writer re-armed its timer, which cancelled the pending wait,
// and no stall was ever bounded again.)
// Short limits, so that the tests of the per-connection timeouts take a fraction of a second.
class RegistryProxyLimitsTest : public RegistryProxyTest {
 protected:
  static constexpr auto kRequestTimeout = std::chrono::milliseconds(300);
  static constexpr auto kWriteTimeout = std::chrono::milliseconds(400);
  RegistryProxyLimits limits() const override {
    RegistryProxyLimits limits = RegistryProxyTest::limits();
    limits.request_timeout = kRequestTimeout;
    limits.write_timeout = kWriteTimeout;
    return limits;
  }
};

TEST_F(RegistryProxyLimitsTest, AClientThatStopsReadingIsCutOffByTheWriteTimeout) {
  // Far more than the kernel buffers on both sides hold (the client's is kept small), so the
  // server's writes must stall once the client stops reading.
  const std::string big = pattern(std::size_t{24} * 1024 * 1024);
  const std::string digest = sha256_of(big);
  upstream_.set_script([&big](const UpstreamRequest&) { return blob_reply(big); });
  ASSERT_EQ(get(blob_path("team/app", digest)).body().size(), big.size());  // now a cache hit

  auto client = connect("quay.io", 16 * 1024);
  client->request("GET", blob_path("team/app", digest));
  client->read_exactly(256 * 1024);
  // The first request's connection may still be closing on the server's side.
  ASSERT_TRUE(core::testing::eventually([&] { return front_door_->open_connections() == 1; }));

  // Bound: the write timeout of the chunk in hand, plus a second of margin for a loaded machine
  // under the sanitizers.
  EXPECT_TRUE(core::testing::eventually([&] { return front_door_->open_connections() == 0; },
                                        kWriteTimeout + std::chrono::seconds(1)));
  EXPECT_EQ(counters_.client_disconnects.value(), 1U);
  // The client gets what was buffered and then the end of the connection, never the whole blob.
  EXPECT_LT(client->drain() + 256 * 1024, big.size());
}

// --- manifests ------------------------------------------------------------------------------

TEST_F(RegistryProxyTest, ManifestByTagComesFromUpstreamOnceThenFromTheCache) {
  upstream_.set_script(
      [](const UpstreamRequest&) { return manifest_reply(kManifest, kOciManifest); });
  for (int i = 0; i < 2; ++i) {
    auto response =
        get("/v2/team/app/manifests/v1", "Accept: " + std::string(upstream_accept()) + "\r\n");
    ASSERT_EQ(response.result_int(), 200);
    EXPECT_EQ(response.body(), kManifest);
    EXPECT_EQ(response[http::field::content_type], kOciManifest);
    EXPECT_EQ(response["Docker-Content-Digest"], sha256_of(kManifest));
  }
  EXPECT_EQ(upstream_.count(http::verb::get), 1U);

  auto client = connect();
  client->request("HEAD", "/v2/team/app/manifests/" + sha256_of(kManifest));
  auto head = client->response(true);
  EXPECT_EQ(head.result_int(), 200);
  EXPECT_EQ(head[http::field::content_length], std::to_string(kManifest.size()));
  EXPECT_EQ(upstream_.count(http::verb::get), 1U);
}

// The manifest half of the cross-repository rule: a manifest cached for one repository is served
// by digest to another only with upstream's word for that repository.
TEST_F(RegistryProxyTest, AManifestCachedForOneRepositoryIsServedToAnotherOnlyIfUpstreamSaysSo) {
  const std::string digest = sha256_of(kManifest);
  upstream_.set_script(
      [](const UpstreamRequest&) { return manifest_reply(kManifest, kOciManifest); });
  ASSERT_EQ(get("/v2/team/public/manifests/v1").result_int(), 200);

  upstream_.set_script([](const UpstreamRequest&) { return status_reply(404); });
  auto refused = get("/v2/team/private/manifests/" + digest);
  EXPECT_EQ(refused.result_int(), 404);
  EXPECT_EQ(refused.body().find(kManifest), std::string::npos);
  ASSERT_FALSE(upstream_.seen().empty());
  EXPECT_EQ(upstream_.seen().back().repository, "team/private");

  upstream_.set_script(
      [](const UpstreamRequest&) { return manifest_reply(kManifest, kOciManifest); });
  auto granted = get("/v2/team/other/manifests/" + digest);
  EXPECT_EQ(granted.result_int(), 200);
  EXPECT_EQ(granted.body(), kManifest);
  EXPECT_EQ(upstream_.seen().back().repository, "team/other");
  // Once upstream has said so, the same repository is served from the cache.
  auto before = upstream_.seen().size();
  EXPECT_EQ(get("/v2/team/other/manifests/" + digest).body(), kManifest);
  EXPECT_EQ(upstream_.seen().size(), before);
}

// --- tags/list and referrers ------------------------------------------------------------------

TEST_F(RegistryProxyTest, TagsListGoesUpstreamWithItsQueryAndLinkComesBack) {
  upstream_.set_forward_script([](const testing::ForwardedRequest&) {
    ScriptedReply reply;
    reply.body = R"({"name":"team/app","tags":["v1","v2"]})";
    reply.fields.emplace_back("Content-Type", "application/json");
    reply.fields.emplace_back("Link", R"(</v2/team/app/tags/list?n=2&last=v2>; rel="next")");
    reply.fields.emplace_back("Connection", "X-Hop");
    reply.fields.emplace_back("X-Hop", "this connection's only");
    return reply;
  });
  auto response = get("/v2/team/app/tags/list?n=2&last=v0", "Authorization: Bearer T\r\n");
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), R"({"name":"team/app","tags":["v1","v2"]})");
  EXPECT_EQ(response["Link"], R"(</v2/team/app/tags/list?n=2&last=v2>; rel="next")");
  EXPECT_EQ(response[http::field::content_type], "application/json");
  EXPECT_EQ(response.count("X-Hop"), 0U);  // named by Connection: hop-by-hop
  auto forwarded = upstream_.forwarded();
  ASSERT_EQ(forwarded.size(), 1U);
  EXPECT_EQ(forwarded[0].target, "/v2/team/app/tags/list?n=2&last=v0");
  // With the client's own credentials: the appliance's would list what the client may not see.
  EXPECT_EQ(forwarded[0].fields[http::field::authorization], "Bearer T");
  EXPECT_TRUE(upstream_.seen().empty());
  EXPECT_EQ(counters_.passthrough_requests.value(), 1U);
}

TEST_F(RegistryProxyTest, ReferrersGoUpstreamWithTheFilterAndItsStatusComesBack) {
  const std::string subject = sha256_of("subject");
  upstream_.set_forward_script([](const testing::ForwardedRequest&) {
    ScriptedReply reply;
    reply.body = R"({"schemaVersion":2,"manifests":[]})";
    reply.fields.emplace_back("Content-Type", "application/vnd.oci.image.index.v1+json");
    reply.fields.emplace_back("OCI-Filters-Applied", "artifactType");
    return reply;
  });
  auto response = get("/v2/team/app/referrers/" + subject + "?artifactType=application%2Fx");
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response["OCI-Filters-Applied"], "artifactType");
  EXPECT_EQ(upstream_.forwarded().at(0).target,
            "/v2/team/app/referrers/" + subject + "?artifactType=application%2Fx");

  upstream_.set_forward_script([](const testing::ForwardedRequest&) { return status_reply(404); });
  EXPECT_EQ(get("/v2/team/app/tags/list").result_int(), 404);
}

TEST_F(RegistryProxyTest, APassedThroughAnswerIsStreamedWhateverItsSize) {
  const std::string listing = pattern(std::size_t{6} * 1024 * 1024);
  upstream_.set_forward_script([&](const testing::ForwardedRequest&) {
    ScriptedReply reply;
    reply.body = listing;
    reply.announce_length = false;  // chunked upstream: chunked to the client too
    return reply;
  });
  auto response = get("/v2/team/app/tags/list");
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(sha256_of(response.body()), sha256_of(listing));
}

// --- per-connection limits --------------------------------------------------------------------

// A client that connects and sends nothing, or only part of a request, loses the connection
// after the request timeout.
TEST_F(RegistryProxyLimitsTest, AConnectionWithoutARequestIsClosedAfterTheRequestTimeout) {
  auto silent = connect();
  auto partial = connect();
  partial->send("GET /v2/ HTTP/1.1\r\nHost: qu");
  auto started = std::chrono::steady_clock::now();
  auto closed = [](const std::string& ending) {
    return ending == "close_notify" || ending == "cut";
  };
  EXPECT_TRUE(closed(silent->ending()));
  EXPECT_TRUE(closed(partial->ending()));
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, kRequestTimeout - std::chrono::milliseconds(50));
  EXPECT_LT(waited, kRequestTimeout + std::chrono::seconds(3));
  EXPECT_TRUE(core::testing::eventually([&] { return front_door_->open_connections() == 0; }));
  // The timeout counts from the end of the last response: a kept-alive client gets the same.
  auto kept = connect();
  kept->request("GET", "/v2/");
  EXPECT_EQ(kept->response().result_int(), 200);
  EXPECT_TRUE(closed(kept->ending()));
}

}  // namespace
}  // namespace pullthrough::proxy
