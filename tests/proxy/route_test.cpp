#include "proxy/route.hpp"

#include <gtest/gtest.h>

namespace pullthrough::proxy {
namespace {

const std::string kDigest =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(RepositoryNameTest, AcceptsSpecGrammar) {
  for (const char* name : {"alpine", "library/alpine", "a/b/c/d", "my-app", "my--app", "a_b",
                           "a__b", "a.b", "0", "k8s.gcr.io-mirror/pause"}) {
    EXPECT_TRUE(is_valid_repository(name)) << name;
  }
}

TEST(RepositoryNameTest, RejectsOutsideGrammar) {
  for (const char* name : {"", "Alpine", "a//b", "/a", "a/", "-a", "a-", "a___b", "a..b", "a.-b",
                           "a b", "a%2fb", "a\\b", "a:b", "a@b", "_a"}) {
    EXPECT_FALSE(is_valid_repository(name)) << name;
  }
  EXPECT_TRUE(is_valid_repository(std::string(255, 'a')));
  EXPECT_FALSE(is_valid_repository(std::string(256, 'a')));
}

TEST(RepositoryNameTest, TraversalIsRejected) {
  for (const char* name : {"..", "../etc", "a/../b", "a/..", "./a", "a/./b", ".", "a/.hidden"}) {
    EXPECT_FALSE(is_valid_repository(name)) << name;
  }
}

TEST(TagTest, AcceptsSpecGrammar) {
  for (const char* tag : {"latest", "3.19", "v1.2.3-rc.1", "_x", "A", "sha256-abc.sig"}) {
    EXPECT_TRUE(is_valid_tag(tag)) << tag;
  }
  EXPECT_TRUE(is_valid_tag(std::string(128, 'a')));
}

TEST(TagTest, RejectsOutsideGrammar) {
  for (const char* tag : {"", ".x", "-x", "a/b", "a:b", "..", "a b", "a%20"}) {
    EXPECT_FALSE(is_valid_tag(tag)) << tag;
  }
  EXPECT_FALSE(is_valid_tag(std::string(129, 'a')));
}

TEST(DigestTest, Sha256AndSha512) {
  EXPECT_EQ(check_digest(kDigest), DigestStatus::ok);
  EXPECT_EQ(check_digest("sha512:" + std::string(128, 'a')), DigestStatus::ok);
}

TEST(DigestTest, WrongLengthOrCaseIsMalformed) {
  EXPECT_EQ(check_digest("sha256:" + std::string(63, 'a')), DigestStatus::malformed);
  EXPECT_EQ(check_digest("sha256:" + std::string(65, 'a')), DigestStatus::malformed);
  EXPECT_EQ(check_digest("sha256:" + std::string(64, 'A')), DigestStatus::malformed);
  EXPECT_EQ(check_digest("sha256:" + std::string(63, 'a') + "g"), DigestStatus::malformed);
}

TEST(DigestTest, GrammarViolationsAreMalformed) {
  for (const char* digest : {"", ":", "sha256", "sha256:", ":abc", "SHA256:abc", "sha256:a/b",
                             "sha+:abc", "+sha:abc", "sha..x:abc", "sha256:../../etc"}) {
    EXPECT_EQ(check_digest(digest), DigestStatus::malformed) << digest;
  }
}

TEST(DigestTest, OtherWellFormedAlgorithmsAreUnsupported) {
  EXPECT_EQ(check_digest("md5:abc"), DigestStatus::unsupported);
  EXPECT_EQ(check_digest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"),
            DigestStatus::unsupported);
}

TEST(RouteTest, Base) {
  for (const char* target : {"/v2/", "/v2", "/v2/?x=1"}) {
    auto r = parse_route(target);
    ASSERT_TRUE(r.route) << target;
    EXPECT_EQ(r.route->endpoint, ApiEndpoint::base);
  }
}

TEST(RouteTest, ManifestByTagAndDigest) {
  auto tag = parse_route("/v2/library/alpine/manifests/3.19");
  ASSERT_TRUE(tag.route);
  EXPECT_EQ(tag.route->endpoint, ApiEndpoint::manifest);
  EXPECT_EQ(tag.route->repository, "library/alpine");
  EXPECT_EQ(tag.route->reference, "3.19");
  EXPECT_FALSE(tag.route->reference_is_digest);

  auto digest = parse_route("/v2/alpine/manifests/" + kDigest);
  ASSERT_TRUE(digest.route);
  EXPECT_TRUE(digest.route->reference_is_digest);
  EXPECT_EQ(digest.route->reference, kDigest);
}

TEST(RouteTest, BlobTagsReferrersAndUploads) {
  auto blob = parse_route("/v2/a/b/blobs/" + kDigest);
  ASSERT_TRUE(blob.route);
  EXPECT_EQ(blob.route->endpoint, ApiEndpoint::blob);
  EXPECT_EQ(blob.route->repository, "a/b");

  auto tags = parse_route("/v2/a/b/tags/list?n=10&last=v1");
  ASSERT_TRUE(tags.route);
  EXPECT_EQ(tags.route->endpoint, ApiEndpoint::tags_list);
  EXPECT_EQ(tags.route->repository, "a/b");

  auto referrers = parse_route("/v2/a/referrers/" + kDigest + "?artifactType=x");
  ASSERT_TRUE(referrers.route);
  EXPECT_EQ(referrers.route->endpoint, ApiEndpoint::referrers);

  auto start = parse_route("/v2/a/b/blobs/uploads/");
  ASSERT_TRUE(start.route);
  EXPECT_EQ(start.route->endpoint, ApiEndpoint::upload);
  EXPECT_EQ(start.route->repository, "a/b");
  EXPECT_EQ(start.route->reference, "");

  auto session = parse_route("/v2/a/blobs/uploads/3f2a-b_c=");
  ASSERT_TRUE(session.route);
  EXPECT_EQ(session.route->reference, "3f2a-b_c=");
}

TEST(RouteTest, RepositoryNamedLikeAnEndpointKeyword) {
  auto r = parse_route("/v2/manifests/blobs/manifests/latest");
  ASSERT_TRUE(r.route);
  EXPECT_EQ(r.route->repository, "manifests/blobs");
  auto u = parse_route("/v2/blobs/uploads/manifests/v1");
  ASSERT_TRUE(u.route);
  EXPECT_EQ(u.route->endpoint, ApiEndpoint::manifest);
  EXPECT_EQ(u.route->repository, "blobs/uploads");
}

TEST(RouteTest, TraversalInRepositoryIsNameInvalid) {
  for (const std::string& target :
       std::vector<std::string>{"/v2/../etc/manifests/latest", "/v2/a/../../manifests/latest",
                                "/v2/%2e%2e/manifests/latest", "/v2/a/./b/blobs/" + kDigest,
                                "/v2//etc/passwd/manifests/latest", "/v2/a%2F..%2Fb/tags/list",
                                "/v2/../blobs/uploads/"}) {
    auto r = parse_route(target);
    EXPECT_FALSE(r.route) << target;
    EXPECT_EQ(r.error, RouteError::name_invalid) << target;
  }
}

TEST(RouteTest, TraversalInReferenceIsRejected) {
  auto tag = parse_route("/v2/a/manifests/..");
  EXPECT_EQ(tag.error, RouteError::manifest_unknown);
  auto blob = parse_route("/v2/a/blobs/sha256:..%2f..%2fetc");
  EXPECT_EQ(blob.error, RouteError::blob_unknown);
  auto session = parse_route("/v2/a/blobs/uploads/..%2f");
  EXPECT_FALSE(session.route);
}

TEST(RouteTest, BadDigestsAreReported) {
  EXPECT_EQ(parse_route("/v2/a/blobs/latest").error, RouteError::blob_unknown);
  EXPECT_EQ(parse_route("/v2/a/blobs/md5:abc").error, RouteError::unsupported_digest);
  EXPECT_EQ(parse_route("/v2/a/manifests/sha256:abc").error, RouteError::manifest_unknown);
  EXPECT_EQ(parse_route("/v2/a/referrers/latest").error, RouteError::digest_invalid);
}

// Regression: a reference outside the tag grammar answered 400 MANIFEST_INVALID. Content that
// cannot exist is unknown: the distribution spec's conformance tests pull
// ".INVALID_MANIFEST_NAME" and expect 404, and registry:2 answers 404.
TEST(RouteTest, AManifestThatCannotExistIs404ManifestUnknown) {
  auto routed = parse_route("/v2/a/manifests/.INVALID_MANIFEST_NAME");
  ASSERT_FALSE(routed.route);
  EXPECT_EQ(routed.error, RouteError::manifest_unknown);
  EXPECT_EQ(oci_error_of(routed.error), OciError::manifest_unknown);
  EXPECT_EQ(status_of(routed.error), 404U);
}

TEST(RouteTest, EachRouteErrorHasTheSpecsCodeAndStatus) {
  struct Case {
    RouteError error;
    std::string_view code;
    unsigned status;
  };
  for (const Case& c : {Case{RouteError::not_found, "NOT_FOUND", 404},
                        Case{RouteError::name_invalid, "NAME_INVALID", 400},
                        Case{RouteError::manifest_unknown, "MANIFEST_UNKNOWN", 404},
                        Case{RouteError::blob_unknown, "BLOB_UNKNOWN", 404},
                        Case{RouteError::digest_invalid, "DIGEST_INVALID", 400},
                        Case{RouteError::unsupported_digest, "UNSUPPORTED", 400}}) {
    EXPECT_EQ(code_of(oci_error_of(c.error)), c.code) << to_string(c.error);
    EXPECT_EQ(to_string(c.error), c.code);
    EXPECT_EQ(status_of(c.error), c.status) << to_string(c.error);
  }
}

TEST(RouteTest, NonApiPathsAreNotFound) {
  for (const char* target : {"/", "", "/v1/x", "/v2x", "/v2/a", "/v2/a/tags/all", "/v2/a/other/x",
                             "/ca.crt", "v2/a/manifests/x"}) {
    auto r = parse_route(target);
    EXPECT_FALSE(r.route) << target;
    EXPECT_EQ(r.error, RouteError::not_found) << target;
  }
}

TEST(RouteTest, MessagesQuoteSafely) {
  auto r = parse_route(std::string("/v2/a\x01\"b/manifests/latest"));
  EXPECT_EQ(r.message, "repository name \"a??b\" is invalid");
  EXPECT_EQ(to_string(r.error), "NAME_INVALID");
}

}  // namespace
}  // namespace pullthrough::proxy
