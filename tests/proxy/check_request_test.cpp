#include "proxy/api/check_request.hpp"

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
      ASSERT_TRUE(checked.route) << c.target << ": " << checked.refusal.message;
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

TEST_F(CheckRequestTest, ABodyIsRefusedBeforeThePathIsLookedAt) {
  auto pull = check(request(http::verb::get, "/v2/org/app/manifests/latest", "quay.io"), true);
  ASSERT_FALSE(pull.route);
  EXPECT_EQ(pull.refusal.status, 400U);
  EXPECT_TRUE(pull.refusal.close);
  auto push = check(request(http::verb::put, "/v2/org/app/manifests/latest", "quay.io"), true);
  ASSERT_FALSE(push.route);
  EXPECT_EQ(push.refusal.error, OciError::unsupported);
  EXPECT_EQ(push.refusal.status, 405U);
  EXPECT_TRUE(push.refusal.close);
  // Even a path outside the API: the unread body already decides the answer.
  EXPECT_EQ(check(request(http::verb::get, "/etc/passwd", "quay.io"), true).refusal.status, 400U);
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
        Case{"/v3/", OciError::not_found, 404}}) {
    auto checked = check(request(http::verb::get, c.target, "quay.io"));
    ASSERT_FALSE(checked.route) << c.target;
    EXPECT_EQ(checked.refusal.error, c.error) << c.target;
    EXPECT_EQ(checked.refusal.status, c.status) << c.target;
    EXPECT_FALSE(checked.refusal.close) << c.target;  // the connection is still in step
  }
}

TEST_F(CheckRequestTest, OnlyPullsAreServed) {
  for (auto method : {http::verb::post, http::verb::put, http::verb::delete_, http::verb::patch}) {
    auto checked = check(request(method, "/v2/org/app/manifests/latest", "quay.io"));
    ASSERT_FALSE(checked.route);
    EXPECT_EQ(checked.refusal.error, OciError::unsupported);
    EXPECT_FALSE(checked.refusal.close);
  }
  auto upload = check(request(http::verb::get, "/v2/org/app/blobs/uploads/", "quay.io"));
  ASSERT_FALSE(upload.route);
  EXPECT_EQ(upload.refusal.error, OciError::unsupported);
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
