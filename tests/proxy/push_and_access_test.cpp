// The proxy as a client that pushes, logs in and pulls private content sees it: requests passed
// upstream with the client's own credentials and bodies (proxy/api/forward_handler), the token
// endpoint (token_handler), `GET /v2/` (base_handler), and who may read what from the cache
// (access_check). The upstream is scripted, so each test says exactly what the registry answers.
#include <utility>

#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/proxy/registry_proxy_fixture.hpp"

namespace pullthrough::proxy {
namespace {

using testing::blob_reply;
using testing::ForwardedRequest;
using testing::kLayer;
using testing::kLayerDigest;
using testing::kManifest;
using testing::manifest_reply;
using testing::pattern;
using testing::RegistryProxyTest;
using testing::ScriptedReply;
using testing::sha256_of;
using testing::status_reply;

const std::string kChallenge =
    R"(Bearer realm="https://auth.example.test/token",service="quay.io")";
const std::string kOurRealm = "https://quay.io/v2/_pullthrough/token";

ScriptedReply reply(unsigned status, std::vector<std::pair<std::string, std::string>> fields = {},
                    std::string body = "{}") {
  ScriptedReply out;
  out.status = status;
  out.fields = std::move(fields);
  out.body = std::move(body);
  return out;
}

ScriptedReply challenge_reply() { return reply(401, {{"WWW-Authenticate", kChallenge}}); }

std::string chunked(const std::string& bytes, std::size_t piece) {
  std::string out;
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    std::string part = bytes.substr(at, piece);
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", part.size());
    out += size + part + "\r\n";
  }
  return out + "0\r\n\r\n";
}

// Pushes kManifest as org/app:v1, then asks for org/app:v1 back as an OCI manifest: the two
// answers.
std::pair<http::response<http::string_body>, http::response<http::string_body>> push_then_pull(
    testing::TlsClient& client) {
  client.request("PUT", "/v2/org/app/manifests/v1",
                 "Content-Type: " + std::string(kOciManifest) +
                     "\r\nContent-Length: " + std::to_string(kManifest.size()) + "\r\n");
  client.send(kManifest);
  auto pushed = client.response();
  client.request("GET", "/v2/org/app/manifests/v1",
                 "Accept: " + std::string(kOciManifest) + "\r\n");
  return {std::move(pushed), client.response()};
}

// --- push -----------------------------------------------------------------------------------

TEST_F(RegistryProxyTest, AnUploadGoesUpstreamWithTheClientsCredentialsAndBody) {
  upstream_.set_forward_script([](const ForwardedRequest&) {
    return reply(202, {{"Location", "https://quay.io/v2/org/app/blobs/uploads/u1?_state=a%2Bb=="},
                       {"Range", "0-2"},
                       {"Docker-Upload-UUID", "u1"}});
  });
  auto client = connect();
  client->send(
      "POST /v2/org/app/blobs/uploads/ HTTP/1.1\r\nHost: quay.io\r\nAuthorization: Bearer T1\r\n"
      "Content-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nabc");
  auto response = client->response();
  EXPECT_EQ(response.result_int(), 202);
  EXPECT_EQ(response[http::field::location],
            "https://quay.io/v2/org/app/blobs/uploads/u1?_state=a%2Bb==");
  EXPECT_EQ(response["Range"], "0-2");
  EXPECT_EQ(response["Docker-Upload-UUID"], "u1");
  auto forwarded = upstream_.forwarded();
  ASSERT_EQ(forwarded.size(), 1U);
  EXPECT_EQ(forwarded[0].method, http::verb::post);
  EXPECT_EQ(forwarded[0].target, "/v2/org/app/blobs/uploads/");
  EXPECT_EQ(forwarded[0].fields[http::field::authorization], "Bearer T1");
  EXPECT_EQ(forwarded[0].fields[http::field::content_type], "application/octet-stream");
  EXPECT_EQ(forwarded[0].fields.count(http::field::host), 0U);
  EXPECT_EQ(forwarded[0].body, "abc");
  EXPECT_EQ(forwarded[0].announced_length, 3U);
  EXPECT_FALSE(forwarded[0].origin);  // the registry's own upstream
  EXPECT_EQ(counters_.push_requests.value(), 1U);
  EXPECT_EQ(counters_.push_bytes.value(), 3U);
  // The connection is still in step for the next request.
  client->request("GET", "/v2/");
  EXPECT_EQ(client->response().result_int(), 200);
}

TEST_F(RegistryProxyTest, AStreamedPatchWithNoLengthArrivesWholeAndTheConnectionStaysUsable) {
  // docker's PATCH: chunked, with neither Content-Length nor Content-Range.
  const std::string layer = pattern(std::size_t{3} * 1024 * 1024 + 17);
  upstream_.set_forward_script([](const ForwardedRequest& request) {
    return reply(202, {{"Location", "/v2/org/app/blobs/uploads/u1?_state=next"},
                       {"Range", "0-" + std::to_string(request.body.size() - 1)}});
  });
  auto client = connect();
  client->send(
      "PATCH /v2/org/app/blobs/uploads/u1?_state=first HTTP/1.1\r\nHost: quay.io\r\n"
      "Transfer-Encoding: chunked\r\n\r\n" +
      chunked(layer, 100'000));
  auto response = client->response();
  EXPECT_EQ(response.result_int(), 202);
  // A relative Location comes back as it was.
  EXPECT_EQ(response[http::field::location], "/v2/org/app/blobs/uploads/u1?_state=next");
  EXPECT_EQ(response["Range"], "0-" + std::to_string(layer.size() - 1));
  auto forwarded = upstream_.forwarded();
  ASSERT_EQ(forwarded.size(), 1U);
  EXPECT_EQ(forwarded[0].target, "/v2/org/app/blobs/uploads/u1?_state=first");
  EXPECT_FALSE(forwarded[0].announced_length);
  EXPECT_EQ(sha256_of(forwarded[0].body), sha256_of(layer));
  EXPECT_EQ(counters_.push_bytes.value(), layer.size());
  client->request("GET", "/v2/");
  EXPECT_EQ(client->response().result_int(), 200);
}

TEST_F(RegistryProxyTest, AChunkWithALengthArrivesWholeOnAConnectionThatCarriedAnUploadStart) {
  // skopeo's push: POST for a session, then on the same connection one PATCH with the layer's
  // Content-Length and no Content-Range.
  const std::string layer = pattern(std::size_t{2} * 1024 * 1024 + 5);
  upstream_.set_forward_script([](const ForwardedRequest& request) {
    if (request.method == http::verb::post) {
      return reply(202, {{"Location", "https://quay.io/v2/org/app/blobs/uploads/u1?_state=s1"}});
    }
    return reply(202, {{"Location", "https://quay.io/v2/org/app/blobs/uploads/u1?_state=s2"},
                       {"Range", "0-" + std::to_string(request.body.size() - 1)}});
  });
  auto client = connect();
  client->request("POST", "/v2/org/app/blobs/uploads/", "Content-Length: 0\r\n");
  auto started = client->response();
  ASSERT_EQ(started.result_int(), 202) << started.body();
  client->send(
      "PATCH /v2/org/app/blobs/uploads/u1?_state=s1 HTTP/1.1\r\nHost: quay.io\r\n"
      "Content-Type: application/octet-stream\r\nContent-Length: " +
      std::to_string(layer.size()) + "\r\n\r\n" + layer);
  auto patched = client->response();
  EXPECT_EQ(patched.result_int(), 202) << patched.body();
  auto forwarded = upstream_.forwarded();
  ASSERT_EQ(forwarded.size(), 2U);
  EXPECT_EQ(forwarded[1].announced_length, layer.size());
  EXPECT_EQ(sha256_of(forwarded[1].body), sha256_of(layer));
}

TEST_F(RegistryProxyTest, AnUploadIsReadInPiecesOfManyRecordsWhenTheyHaveArrived) {
  // A TLS record carries 16 KiB at most. What has arrived fills the reader's whole buffer, so an
  // upload goes upstream in large writes, not one per record.
  constexpr std::size_t kPiece = std::size_t{64} * 1024;
  const std::string layer = pattern(std::size_t{256} * 1024);
  upstream_.set_forward_reads(kPiece, std::chrono::milliseconds(300));
  upstream_.set_forward_script([](const ForwardedRequest&) { return reply(202); });
  auto client = connect();
  client->send(
      "PATCH /v2/org/app/blobs/uploads/u1?_state=s1 HTTP/1.1\r\nHost: quay.io\r\n"
      "Content-Length: " +
      std::to_string(layer.size()) + "\r\n\r\n" + layer);
  EXPECT_EQ(client->response().result_int(), 202);
  auto forwarded = upstream_.forwarded();
  ASSERT_EQ(forwarded.size(), 1U);
  EXPECT_EQ(sha256_of(forwarded[0].body), sha256_of(layer));
  EXPECT_EQ(forwarded[0].largest_read, kPiece);
}

TEST_F(RegistryProxyTest, BytesPastAnUploadsContentLengthNeverGoUpstreamAndAreRefused) {
  upstream_.set_forward_script([](const ForwardedRequest&) { return reply(202); });
  auto client = connect();
  client->send(
      "PATCH /v2/org/app/blobs/uploads/u1?_state=s1 HTTP/1.1\r\nHost: quay.io\r\n"
      "Content-Length: 5\r\n\r\nabcdeMORE BYTES THAN ANNOUNCED\r\n\r\n");
  EXPECT_EQ(client->response().result_int(), 202);
  // What follows the body is read as the next request, and is none.
  auto refused = client->response();
  EXPECT_EQ(refused.result_int(), 400);
  EXPECT_EQ(client->ending(), "close_notify");
  auto forwarded = upstream_.forwarded();
  ASSERT_EQ(forwarded.size(), 1U);
  EXPECT_EQ(forwarded[0].body, "abcde");
  EXPECT_EQ(counters_.push_bytes.value(), 5U);
}

TEST_F(RegistryProxyTest, AChunkLongerThanItsSizeBreaksTheUploadOffBeforeUpstreamHasItWhole) {
  upstream_.set_forward_script([](const ForwardedRequest&) { return reply(202); });
  auto client = connect();
  client->send(
      "PATCH /v2/org/app/blobs/uploads/u1?_state=s1 HTTP/1.1\r\nHost: quay.io\r\n"
      "Transfer-Encoding: chunked\r\n\r\n5\r\nabcdefgh\r\n0\r\n\r\n");
  // No answer: the upload is cut off, and so is the connection.
  EXPECT_EQ(client->ending(), "cut");
  auto forwarded = upstream_.forwarded();
  ASSERT_EQ(forwarded.size(), 1U);
  EXPECT_TRUE(forwarded[0].body_error);
  EXPECT_NE(forwarded[0].body, "abcdefgh");
}

TEST_F(RegistryProxyTest, ExpectContinueIsAnsweredBeforeTheBodyIsSent) {
  upstream_.set_forward_script(
      [](const ForwardedRequest& request) { return reply(request.body == "layer" ? 201 : 400); });
  auto client = connect();
  client->send("PUT /v2/org/app/blobs/uploads/u1?digest=" + kLayerDigest +
               " HTTP/1.1\r\nHost: quay.io\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(client->read_exactly(25), "HTTP/1.1 100 Continue\r\n\r\n");
  client->send("layer");
  EXPECT_EQ(client->response().result_int(), 201);
  // Expect is answered here, not passed on.
  EXPECT_EQ(upstream_.forwarded().at(0).fields.count(http::field::expect), 0U);
}

TEST_F(RegistryProxyTest, ALocationOnTheUpstreamComesBackToTheHostTheClientUsed) {
  upstream_.set_forward_script([](const ForwardedRequest& request) {
    if (request.target.find("elsewhere") != std::string::npos) {
      return reply(202, {{"Location", "https://storage.example.test/upload?sig=abc"}});
    }
    return reply(202, {{"Location", "https://quay.io:443/v2/org/app/blobs/uploads/u2?_state=s"}});
  });
  auto client = connect();
  client->request("POST", "/v2/org/app/blobs/uploads/", "Content-Length: 0\r\n", "quay.io:8443");
  EXPECT_EQ(client->response()[http::field::location],
            "https://quay.io:8443/v2/org/app/blobs/uploads/u2?_state=s");
  client->request("POST", "/v2/org/app/blobs/uploads/?elsewhere=1", "Content-Length: 0\r\n");
  EXPECT_EQ(client->response()[http::field::location],
            "https://storage.example.test/upload?sig=abc");
}

TEST_F(RegistryProxyTest, APushWhileUpstreamIsDownFailsAtOnceNamingTheUpstream) {
  upstream_.set_forward_script([](const ForwardedRequest&) {
    ScriptedReply down;
    down.unreachable = true;
    return down;
  });
  auto client = connect();
  client->request("POST", "/v2/org/app/blobs/uploads/", "Content-Length: 0\r\n");
  auto response = client->response();
  EXPECT_EQ(response.result_int(), 503);
  EXPECT_NE(response.body().find("https://quay.io"), std::string::npos) << response.body();
  EXPECT_NE(response.body().find("UNAVAILABLE"), std::string::npos) << response.body();
}

TEST_F(RegistryProxyTest, APushedManifestThatUpstreamAcceptedIsPulledFromTheCache) {
  const std::string digest = sha256_of(kManifest);
  upstream_.set_forward_script([&](const ForwardedRequest& request) {
    EXPECT_EQ(request.body, kManifest);
    return reply(201, {{"Docker-Content-Digest", digest},
                       {"Location", "https://quay.io/v2/org/app/manifests/" + digest}});
  });
  // Anonymous reads of the repository are allowed: a public repository.
  upstream_.set_script([&](const UpstreamRequest& request) {
    if (request.method == http::verb::head) return manifest_reply(kManifest, kOciManifest);
    return status_reply(request.target == "/v2/" ? 200 : 500);
  });
  auto client = connect();
  auto [pushed, pulled] = push_then_pull(*client);
  EXPECT_EQ(pushed.result_int(), 201);
  EXPECT_EQ(pulled.result_int(), 200);
  EXPECT_EQ(pulled.body(), kManifest);
  EXPECT_EQ(pulled["Docker-Content-Digest"], digest);
  EXPECT_EQ(upstream_.count(http::verb::get), 0U);  // no manifest GET upstream
}

TEST_F(RegistryProxyTest, APushedManifestWhoseDigestUpstreamDisputesIsNotCached) {
  upstream_.set_forward_script([](const ForwardedRequest&) {
    return reply(201, {{"Docker-Content-Digest", sha256_of("something else")}});
  });
  upstream_.set_script([&](const UpstreamRequest& request) {
    if (request.method == http::verb::head) return manifest_reply(kManifest, kOciManifest);
    return request.target == "/v2/" ? status_reply(200) : status_reply(404);
  });
  auto client = connect();
  auto [pushed, pulled] = push_then_pull(*client);
  EXPECT_EQ(pushed.result_int(), 201);
  EXPECT_EQ(pulled.result_int(), 404);  // asked upstream, which has nothing
  EXPECT_EQ(upstream_.count(http::verb::get), 1U);
}

// --- GET /v2/ and the token endpoint --------------------------------------------------------

TEST_F(RegistryProxyTest, BaseAnswersAsUpstreamWithTheRealmPointedAtTheAppliance) {
  upstream_.set_script([](const UpstreamRequest& request) {
    if (request.credentials.authorization == "Basic dGVzdGVyOnJpZ2h0") return status_reply(200);
    return challenge_reply();
  });
  auto response = get("/v2/");
  EXPECT_EQ(response.result_int(), 401);
  EXPECT_EQ(response[http::field::www_authenticate],
            "Bearer realm=\"" + kOurRealm + "\", service=\"quay.io\"");
  // docker login checks credentials with /v2/: wrong ones fail, right ones pass.
  EXPECT_EQ(get("/v2/", "Authorization: Basic dGVzdGVyOndyb25n\r\n").result_int(), 401);
  EXPECT_EQ(get("/v2/", "Authorization: Basic dGVzdGVyOnJpZ2h0\r\n").result_int(), 200);
  for (const auto& seen : upstream_.seen()) {
    EXPECT_EQ(seen.credentials.auth, UpstreamAuth::client);
  }
}

TEST_F(RegistryProxyTest, BaseIsAnsweredAsUpstreamLastDidWhileUpstreamIsDown) {
  upstream_.set_script([](const UpstreamRequest&) { return challenge_reply(); });
  EXPECT_EQ(get("/v2/").result_int(), 401);
  upstream_.set_script([](const UpstreamRequest&) {
    ScriptedReply down;
    down.unreachable = true;
    return down;
  });
  std::size_t asked = upstream_.seen().size();
  // Within the tag TTL the remembered answer serves without asking.
  auto response = get("/v2/");
  EXPECT_EQ(response.result_int(), 401);
  EXPECT_EQ(upstream_.seen().size(), asked);
  // Past it, upstream is asked, and while it is down the remembered answer still serves.
  steady_clock_.advance(std::chrono::minutes(6));
  response = get("/v2/");
  EXPECT_EQ(response.result_int(), 401);
  EXPECT_NE(response[http::field::www_authenticate].find(kOurRealm), std::string::npos);
  EXPECT_EQ(upstream_.seen().size(), asked + 1);
}

TEST_F(RegistryProxyTest, TokenRequestsGoToTheRealRealmAndTheTokenIsKnownToStandForItsClient) {
  upstream_.set_script([](const UpstreamRequest&) { return challenge_reply(); });
  EXPECT_EQ(get("/v2/").result_int(), 401);  // the realm is learnt here
  upstream_.set_forward_script([](const ForwardedRequest& request) {
    if (request.fields[http::field::authorization] != "Basic dGVzdGVyOnJpZ2h0") {
      return reply(401, {{"Content-Type", "application/json"}}, R"({"details":"bad"})");
    }
    return reply(200, {{"Content-Type", "application/json"}},
                 R"({"token":"T-real","expires_in":300})");
  });
  auto refused = get("/v2/_pullthrough/token?service=quay.io&scope=repository:org/app:pull",
                     "Authorization: Basic dGVzdGVyOndyb25n\r\n");
  EXPECT_EQ(refused.result_int(), 401);
  EXPECT_EQ(refused.body(), R"({"details":"bad"})");
  auto issued = get("/v2/_pullthrough/token?service=quay.io&scope=repository:org/app:pull",
                    "Authorization: Basic dGVzdGVyOnJpZ2h0\r\n");
  EXPECT_EQ(issued.result_int(), 200);
  EXPECT_EQ(issued.body(), R"({"token":"T-real","expires_in":300})");
  auto forwarded = upstream_.forwarded();
  ASSERT_EQ(forwarded.size(), 2U);
  ASSERT_TRUE(forwarded[1].origin);
  EXPECT_EQ(forwarded[1].origin->host, "auth.example.test");
  EXPECT_EQ(forwarded[1].target, "/token?service=quay.io&scope=repository:org/app:pull");
  auto holder = access_.tokens.holder_of("Bearer T-real");
  ASSERT_TRUE(holder);
  EXPECT_FALSE(holder->offline);
  EXPECT_EQ(holder->identity, access_.identities.of_authorization("Basic dGVzdGVyOnJpZ2h0"));
  EXPECT_EQ(counters_.token_requests.value(), 2U);
}

TEST_F(RegistryProxyTest, ContainerdsPostedFormGoesToTheRealmWithItsBody) {
  upstream_.set_script([](const UpstreamRequest&) { return challenge_reply(); });
  EXPECT_EQ(get("/v2/").result_int(), 401);
  upstream_.set_forward_script([](const ForwardedRequest&) {
    return reply(200, {{"Content-Type", "application/json"}}, R"({"access_token":"T-form"})");
  });
  const std::string form =
      "grant_type=password&username=tester&password=r%21ght&scope=repository%3Aorg%2Fapp%3Apull"
      "&service=quay.io&client_id=containerd-client";
  auto client = connect();
  client->request("POST", "/v2/_pullthrough/token",
                  "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                      std::to_string(form.size()) + "\r\n");
  client->send(form);
  EXPECT_EQ(client->response().result_int(), 200);
  auto forwarded = upstream_.forwarded();
  ASSERT_EQ(forwarded.size(), 1U);
  EXPECT_EQ(forwarded[0].method, http::verb::post);
  EXPECT_EQ(forwarded[0].target, "/token");
  EXPECT_EQ(forwarded[0].body, form);
  auto holder = access_.tokens.holder_of("Bearer T-form");
  ASSERT_TRUE(holder);
  EXPECT_EQ(holder->identity, access_.identities.of_password("tester", "r!ght"));
}

TEST_F(RegistryProxyTest, WithTheTokenServiceDownTheApplianceIssuesAnOfflineToken) {
  upstream_.set_script([](const UpstreamRequest&) { return challenge_reply(); });
  EXPECT_EQ(get("/v2/").result_int(), 401);
  upstream_.set_forward_script([](const ForwardedRequest&) {
    ScriptedReply down;
    down.unreachable = true;
    return down;
  });
  auto answer = get("/v2/_pullthrough/token?scope=repository:org/app:pull",
                    "Authorization: Basic dGVzdGVyOnJpZ2h0\r\n");
  EXPECT_EQ(answer.result_int(), 200);
  auto body = nlohmann::json::parse(answer.body());
  std::string token = body.at("token").get<std::string>();
  EXPECT_EQ(token.rfind("pullthrough-offline.", 0), 0U) << token;
  auto holder = access_.tokens.holder_of("Bearer " + token);
  ASSERT_TRUE(holder);
  EXPECT_TRUE(holder->offline);
  EXPECT_EQ(holder->identity, access_.identities.of_authorization("Basic dGVzdGVyOnJpZ2h0"));
  EXPECT_EQ(counters_.offline_tokens.value(), 1U);
  // /v2/ cannot confirm credentials behind an offline token: docker login must not succeed.
  EXPECT_EQ(get("/v2/", "Authorization: Bearer " + token + "\r\n").result_int(), 401);
}

// --- who may read the cache -----------------------------------------------------------------

// A registry where anonymous access reads nothing of org/private, and only "Bearer good" may.
class PrivateRepositoryTest : public RegistryProxyTest {
 protected:
  void SetUp() override {
    RegistryProxyTest::SetUp();
    upstream_.set_script([this](const UpstreamRequest& request) { return answer(request); });
  }

  ScriptedReply answer(const UpstreamRequest& request) {
    if (down_) {
      ScriptedReply unreachable;
      unreachable.unreachable = true;
      return unreachable;
    }
    if (request.target == "/v2/") return challenge_reply();
    bool allowed = request.credentials.auth == UpstreamAuth::client &&
                   request.credentials.authorization == "Bearer good";
    if (!allowed) return challenge_reply();
    if (request.target.find("/manifests/") != std::string::npos) {
      return manifest_reply(kManifest, kOciManifest);
    }
    return blob_reply(kLayer);
  }

  static std::string manifest_path() { return "/v2/org/private/manifests/v1"; }
  std::string accept() const { return "Accept: " + std::string(kOciManifest) + "\r\n"; }

  bool down_ = false;
};

TEST_F(PrivateRepositoryTest, AClientUpstreamAcceptsIsServedAndTheFetchUsesItsCredentials) {
  auto response = get(manifest_path(), accept() + "Authorization: Bearer good\r\n");
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), kManifest);
  auto blob = get(blob_path("org/private", kLayerDigest), "Authorization: Bearer good\r\n");
  EXPECT_EQ(blob.result_int(), 200);
  EXPECT_EQ(blob.body(), kLayer);
  for (const auto& seen : upstream_.seen()) {
    if (seen.method == http::verb::get) {
      EXPECT_EQ(seen.credentials.auth, UpstreamAuth::client) << seen.target;
      EXPECT_EQ(seen.credentials.authorization, "Bearer good") << seen.target;
    }
  }
  // One check: the blob request found the grant the manifest request left.
  EXPECT_EQ(counters_.access_checks.value(), 1U);
}

TEST_F(PrivateRepositoryTest, CachedPrivateContentIsNeverServedToAnyoneElse) {
  ASSERT_EQ(get(manifest_path(), accept() + "Authorization: Bearer good\r\n").result_int(), 200);
  ASSERT_EQ(
      get(blob_path("org/private", kLayerDigest), "Authorization: Bearer good\r\n").result_int(),
      200);
  for (const std::string& authorization :
       {std::string(), std::string("Authorization: Bearer forged\r\n"),
        std::string("Authorization: Basic dGVzdGVyOndyb25n\r\n")}) {
    auto manifest = get(manifest_path(), accept() + authorization);
    EXPECT_EQ(manifest.result_int(), 401) << authorization;
    EXPECT_EQ(manifest.body().find("schemaVersion"), std::string::npos) << authorization;
    EXPECT_EQ(manifest[http::field::www_authenticate],
              "Bearer realm=\"" + kOurRealm + "\", service=\"quay.io\"");
    auto blob = get(blob_path("org/private", kLayerDigest), authorization);
    EXPECT_EQ(blob.result_int(), 401) << authorization;
    EXPECT_LT(blob.body().size(), std::size_t{1024}) << authorization;
  }
  EXPECT_EQ(counters_.access_refused.value(), 6U);
}

TEST_F(PrivateRepositoryTest, AGrantOutlivesAnOutageForItsWindowOnly) {
  ASSERT_EQ(get(manifest_path(), accept() + "Authorization: Bearer good\r\n").result_int(), 200);
  down_ = true;
  // Remembered: served from the cache while upstream is down.
  auto served = get(manifest_path(), accept() + "Authorization: Bearer good\r\n");
  EXPECT_EQ(served.result_int(), 200);
  EXPECT_EQ(served.body(), kManifest);
  // Nobody else: upstream cannot confirm them.
  EXPECT_EQ(get(manifest_path(), accept() + "Authorization: Bearer other\r\n").result_int(), 503);
  // Past the window, not even the client that was granted.
  steady_clock_.advance(RepositoryAccess::kMaxGrant + std::chrono::seconds(1));
  auto expired = get(manifest_path(), accept() + "Authorization: Bearer good\r\n");
  EXPECT_EQ(expired.result_int(), 503);
  EXPECT_EQ(expired.body().find("schemaVersion"), std::string::npos);
}

TEST_F(RegistryProxyTest, APublicRepositoryIsServedToAnyoneAndFetchedWithTheAppliancesAccess) {
  upstream_.set_script([](const UpstreamRequest& request) {
    if (request.target == "/v2/") return status_reply(200);
    return manifest_reply(kManifest, kOciManifest);
  });
  const std::string accept = "Accept: " + std::string(kOciManifest) + "\r\n";
  EXPECT_EQ(get("/v2/org/public/manifests/v1", accept).result_int(), 200);
  EXPECT_EQ(
      get("/v2/org/public/manifests/v1", accept + "Authorization: Bearer any\r\n").result_int(),
      200);
  std::size_t anonymous_heads = 0;
  for (const auto& seen : upstream_.seen()) {
    if (seen.method == http::verb::get) {
      EXPECT_EQ(seen.credentials.auth, UpstreamAuth::appliance);
    }
    if (seen.method == http::verb::head && seen.credentials.auth == UpstreamAuth::anonymous) {
      ++anonymous_heads;
    }
  }
  // Visibility is checked once per tag TTL, not per request.
  EXPECT_EQ(anonymous_heads, 1U);
  EXPECT_EQ(counters_.visibility_checks.value(), 1U);
  EXPECT_EQ(counters_.access_checks.value(), 0U);
}

}  // namespace
}  // namespace pullthrough::proxy
