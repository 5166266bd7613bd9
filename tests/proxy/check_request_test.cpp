#include "proxy/api/check_request.hpp"

#include <utility>

#include <vector>

#include <gtest/gtest.h>

#include "config/loader.hpp"

namespace pullthrough::proxy {
namespace {

const std::string kDigest =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

class CheckRequestTest : public ::testing::Test {
 protected:
  CheckRequestTest()
      : config_(*config::load_string("registries:\n"
                                     "  - {host: quay.io}\n"
                                     "  - {host: registry-1.docker.io, aliases: [docker.io]}\n",
                                     "t.yaml")
                     .config),
        quay_(config_.find_registry("quay.io")),
        docker_(config_.find_registry("registry-1.docker.io")) {}

  static http::request_header<> request(http::verb method, std::string_view target,
                                        std::string_view host, unsigned version = 11) {
    http::request_header<> header;
    header.method(method);
    header.target(target);
    header.version(version);
    if (!host.empty()) header.set(http::field::host, host);
    return header;
  }

  CheckedRequest check(const http::request_header<>& header, bool has_body = false,
                       const config::RegistryConfig* registry = nullptr) const {
    return check_request(header, has_body, config_, registry != nullptr ? registry : quay_,
                         "quay.io");
  }

  config::Config config_;
  const config::RegistryConfig* quay_;
  const config::RegistryConfig* docker_;
};

TEST_F(CheckRequestTest, APullOfEachEndpointPassesWithItsRoute) {
  struct Case {
    std::string target;
    ApiEndpoint endpoint;
  };
  for (const Case& c : {Case{"/v2/", ApiEndpoint::base},
                        Case{"/v2/org/app/manifests/latest", ApiEndpoint::manifest},
                        Case{"/v2/org/app/blobs/" + kDigest, ApiEndpoint::blob},
                        Case{"/v2/org/app/tags/list?n=10", ApiEndpoint::tags_list},
                        Case{"/v2/org/app/referrers/" + kDigest, ApiEndpoint::referrers}}) {
    for (auto method : {http::verb::get, http::verb::head}) {
      auto checked = check(request(method, c.target, "quay.io"));
      ASSERT_TRUE(checked.passed) << c.target << ": " << checked.refusal.message;
      ASSERT_TRUE(checked.route) << c.target;
      EXPECT_EQ(checked.route->endpoint, c.endpoint) << c.target;
    }
  }
  auto checked = check(request(http::verb::get, "/v2/org/app/manifests/latest", "quay.io"));
  ASSERT_TRUE(checked.route);
  EXPECT_EQ(checked.route->repository, "org/app");
  EXPECT_EQ(checked.route->reference, "latest");
}

TEST_F(CheckRequestTest, TheHostMayCarryAPortAndAnyCase) {
  for (const char* host : {"quay.io", "QUAY.io", "quay.io:443"}) {
    EXPECT_TRUE(check(request(http::verb::get, "/v2/", host)).route) << host;
  }
  // An alias names the same registry as its host.
  auto header = request(http::verb::get, "/v2/", "docker.io");
  EXPECT_TRUE(check(header, false, docker_).route);
}

TEST_F(CheckRequestTest, AHostOfAnotherRegistryIsMisdirectedAndCloses) {
  auto checked = check(request(http::verb::get, "/v2/", "registry-1.docker.io"));
  ASSERT_FALSE(checked.route);
  EXPECT_EQ(checked.refusal.error, OciError::misdirected);
  EXPECT_EQ(checked.refusal.status, 0U);  // the error's own: 421
  EXPECT_TRUE(checked.refusal.close);
  EXPECT_NE(checked.refusal.message.find("quay.io"), std::string::npos);
  EXPECT_NE(checked.refusal.message.find("registry-1.docker.io"), std::string::npos);
  // A name that is no registry at all is misdirected too.
  EXPECT_EQ(check(request(http::verb::get, "/v2/", "example.org")).refusal.error,
            OciError::misdirected);
}

TEST_F(CheckRequestTest, HttpOneOneNeedsAHostAndHttpOneZeroDoesNot) {
  auto missing = check(request(http::verb::get, "/v2/", ""));
  ASSERT_FALSE(missing.route);
  EXPECT_EQ(missing.refusal.status, 400U);
  EXPECT_TRUE(missing.refusal.close);
  auto empty_host = check(request(http::verb::get, "/v2/", "[]:443"));
  EXPECT_FALSE(empty_host.route);
  EXPECT_EQ(empty_host.refusal.status, 400U);
  EXPECT_TRUE(check(request(http::verb::get, "/v2/", "", 10)).route);
}

TEST_F(CheckRequestTest, ABodyOnAReadIsRefusedAndClosesTheConnection) {
  for (const char* target : {"/v2/org/app/manifests/latest", "/v2/", "/v2/org/app/tags/list"}) {
    auto pull = check(request(http::verb::get, target, "quay.io"), true);
    ASSERT_FALSE(pull.passed) << target;
    EXPECT_EQ(pull.refusal.status, 400U) << target;
    EXPECT_TRUE(pull.refusal.close) << target;
  }
  // A push carries one, and a path outside the API is passed on as it is.
  auto push = check(request(http::verb::put, "/v2/org/app/manifests/latest", "quay.io"), true);
  ASSERT_TRUE(push.passed) << push.refusal.message;
  EXPECT_EQ(push.kind, RequestKind::push);
  auto other = check(request(http::verb::post, "/api/v1/thing", "quay.io"), true);
  ASSERT_TRUE(other.passed);
  EXPECT_EQ(other.kind, RequestKind::passthrough);
}

TEST_F(CheckRequestTest, PathErrorsTakeTheRouteGrammarsAnswers) {
  struct Case {
    std::string target;
    OciError error;
    unsigned status;
  };
  for (const Case& c :
       {Case{"/v2/org/app/manifests/.INVALID_MANIFEST_NAME", OciError::manifest_unknown, 404},
        Case{"/v2/org/app/blobs/sha256:xyz", OciError::blob_unknown, 404},
        Case{"/v2/Org/app/manifests/latest", OciError::name_invalid, 400},
        Case{"/v2/org/../etc/manifests/latest", OciError::name_invalid, 400},
        Case{"/v2/org/../etc/blobs/uploads/", OciError::name_invalid, 400},
        Case{"/v2/org/%2e%2e/etc/blobs/uploads/", OciError::name_invalid, 400},
        Case{"/v2/org/..%2Fetc/blobs/uploads/u1?_state=x", OciError::name_invalid, 400},
        Case{"/v2//etc/blobs/uploads/", OciError::name_invalid, 400}}) {
    for (auto method : {http::verb::get, http::verb::post, http::verb::put}) {
      auto checked = check(request(method, c.target, "quay.io"));
      ASSERT_FALSE(checked.passed) << c.target;
      EXPECT_FALSE(checked.route) << c.target;
      EXPECT_EQ(checked.refusal.error, c.error) << c.target;
      EXPECT_EQ(checked.refusal.status, c.status) << c.target;
      EXPECT_FALSE(checked.refusal.close) << c.target;  // the connection is still in step
    }
  }
}

TEST_F(CheckRequestTest, PathsOutsideTheApiArePassedThrough) {
  // quay.io's token realm, ghcr.io's, the catalog, another API version: upstream answers them.
  for (const char* target : {"/v2/auth?service=quay.io&scope=repository:a/b:pull", "/token?scope=x",
                             "/v2/_catalog", "/v3/", "/"}) {
    for (auto method : {http::verb::get, http::verb::post, http::verb::head}) {
      auto checked = check(request(method, target, "quay.io"));
      ASSERT_TRUE(checked.passed) << target << ": " << checked.refusal.message;
      EXPECT_EQ(checked.kind, RequestKind::passthrough) << target;
      EXPECT_FALSE(checked.route) << target;
    }
  }
}

TEST_F(CheckRequestTest, EachRequestGetsItsKind) {
  struct Case {
    http::verb method;
    std::string target;
    RequestKind kind;
  };
  const std::string upload = "/v2/org/app/blobs/uploads/6f1c-a_b.C=";
  for (const Case& c : {
           Case{http::verb::get, "/v2/", RequestKind::base},
           Case{http::verb::head, "/v2/", RequestKind::base},
           Case{http::verb::get, "/v2/org/app/manifests/latest", RequestKind::pull},
           Case{http::verb::head, "/v2/org/app/blobs/" + kDigest, RequestKind::pull},
           Case{http::verb::get, "/v2/org/app/tags/list?n=10", RequestKind::listing},
           Case{http::verb::get, "/v2/org/app/referrers/" + kDigest, RequestKind::listing},
           // Every step of a push.
           Case{http::verb::post, "/v2/org/app/blobs/uploads/", RequestKind::push},
           Case{http::verb::post, "/v2/org/app/blobs/uploads/?digest=" + kDigest,
                RequestKind::push},
           Case{http::verb::post, "/v2/org/app/blobs/uploads/?mount=" + kDigest + "&from=a/b",
                RequestKind::push},
           Case{http::verb::patch, upload, RequestKind::push},
           Case{http::verb::put, upload + "?_state=xyz&digest=" + kDigest, RequestKind::push},
           Case{http::verb::get, upload, RequestKind::push},
           Case{http::verb::delete_, upload, RequestKind::push},
           Case{http::verb::put, "/v2/org/app/manifests/latest", RequestKind::push},
           Case{http::verb::delete_, "/v2/org/app/manifests/" + kDigest, RequestKind::push},
           Case{http::verb::delete_, "/v2/org/app/blobs/" + kDigest, RequestKind::push},
           // Methods the API does not define there: upstream says what it makes of them.
           Case{http::verb::post, "/v2/org/app/manifests/latest", RequestKind::passthrough},
           Case{http::verb::put, "/v2/org/app/tags/list", RequestKind::passthrough},
           Case{http::verb::get, "/v2/_pullthrough/token?service=quay.io", RequestKind::token},
           Case{http::verb::post, "/v2/_pullthrough/token", RequestKind::token},
       }) {
    auto checked = check(request(c.method, c.target, "quay.io"));
    ASSERT_TRUE(checked.passed) << c.target << ": " << checked.refusal.message;
    EXPECT_EQ(checked.kind, c.kind) << http::to_string(c.method) << " " << c.target;
  }
  auto upload_route = check(request(http::verb::patch, upload, "quay.io")).route;
  ASSERT_TRUE(upload_route);
  EXPECT_EQ(upload_route->endpoint, ApiEndpoint::upload);
  EXPECT_EQ(upload_route->repository, "org/app");
  // The token endpoint takes GET and POST only.
  auto put_token = check(request(http::verb::put, "/v2/_pullthrough/token", "quay.io"));
  ASSERT_FALSE(put_token.passed);
  EXPECT_EQ(put_token.refusal.status, 405U);
}

TEST_F(CheckRequestTest, WithPushDeniedWritesAreRefusedSayingWhereToPush) {
  config::Config config = *config::load_string(
                               "registries:\n"
                               "  - {host: quay.io, push: deny}\n",
                               "t.yaml")
                               .config;
  const config::RegistryConfig* quay = config.find_registry("quay.io");
  auto checked_with = [&](http::verb method, std::string_view target, bool body) {
    return check_request(request(method, target, "quay.io"), body, config, quay, "quay.io");
  };
  for (auto [method, target] : std::vector<std::pair<http::verb, std::string>>{
           {http::verb::post, "/v2/org/app/blobs/uploads/"},
           {http::verb::put, "/v2/org/app/manifests/v1"},
           {http::verb::delete_, "/v2/org/app/blobs/" + kDigest},
           {http::verb::post, "/api/v1/anything"}}) {
    auto refused = checked_with(method, target, false);
    ASSERT_FALSE(refused.passed) << target;
    EXPECT_EQ(refused.refusal.error, OciError::unsupported) << target;
    EXPECT_EQ(refused.refusal.status, 405U) << target;
    EXPECT_NE(refused.refusal.message.find("https://quay.io"), std::string::npos)
        << refused.refusal.message;
  }
  // With a body the connection closes: the body is never read.
  EXPECT_TRUE(checked_with(http::verb::patch, "/v2/org/app/blobs/uploads/x", true).refusal.close);
  // Pulls and token requests still pass.
  EXPECT_TRUE(checked_with(http::verb::get, "/v2/org/app/manifests/v1", false).passed);
  EXPECT_TRUE(checked_with(http::verb::post, "/v2/_pullthrough/token", true).passed);
}

TEST_F(CheckRequestTest, AnUploadChunkMustNameItsBytesAndCarryThatMany) {
  auto patch = [&](std::string_view range, std::string_view length) {
    auto header = request(http::verb::patch, "/v2/org/app/blobs/uploads/u1", "quay.io");
    if (!range.empty()) header.set(http::field::content_range, range);
    if (!length.empty()) header.set(http::field::content_length, length);
    return check(header, !length.empty() && length != "0");
  };
  EXPECT_TRUE(patch("0-99", "100").passed);
  EXPECT_TRUE(patch("100-100", "1").passed);
  EXPECT_TRUE(patch("", "").passed);  // docker: neither field, a chunked body
  for (auto [range, length] :
       std::vector<std::pair<std::string, std::string>>{{"bytes 0-99/100", "100"},
                                                        {"99-0", "100"},
                                                        {"0-99", "99"},
                                                        {"-5", "5"},
                                                        {"0-", "1"},
                                                        {"a-b", "2"},
                                                        {"0-99999999999999999999", "1"},
                                                        {"0-99", "101"}}) {
    auto checked = patch(range, length);
    ASSERT_FALSE(checked.passed) << range << " / " << length;
    EXPECT_EQ(checked.refusal.error, OciError::range_invalid) << range;
    EXPECT_EQ(checked.refusal.status, 416U) << range;
    EXPECT_TRUE(checked.refusal.close) << range;  // the chunk is never read
  }
}

TEST(HostOfTest, TakesTheHostPartInLowerCase) {
  EXPECT_EQ(host_of("Quay.IO"), "quay.io");
  EXPECT_EQ(host_of("quay.io:443"), "quay.io");
  EXPECT_EQ(host_of("[::1]:443"), "::1");
  EXPECT_EQ(host_of("[::1"), "");
  EXPECT_EQ(host_of(""), "");
}

}  // namespace
}  // namespace pullthrough::proxy
