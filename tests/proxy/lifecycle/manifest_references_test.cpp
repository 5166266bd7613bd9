#include "proxy/lifecycle/manifest_references.hpp"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proxy/media_types.hpp"

namespace pullthrough::proxy {
namespace {

using ::testing::HasSubstr;

// Digests of the right shape: "sha256:" and 64 hex digits made of `c`.
std::string d(char c) { return "sha256:" + std::string(64, c); }

std::optional<ManifestReferences> refs(std::string_view type, const std::string& body,
                                       std::string* error_out = nullptr) {
  std::string error;
  auto result = manifest_references(type, body, error);
  if (error_out != nullptr) *error_out = error;
  return result;
}

std::string refuse(std::string_view type, const std::string& body) {
  std::string error;
  EXPECT_FALSE(refs(type, body, &error)) << body;
  EXPECT_FALSE(error.empty());
  return error;
}

TEST(ManifestReferencesTest, AnImageManifestKeepsItsConfigThenItsLayers) {
  // As docker-registry serves an image built by buildah: OCI manifest, gzip layers.
  const std::string body = R"({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": ")" +
                           d('c') + R"(", "size": 1469},
    "layers": [
      {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ")" +
                           d('1') + R"(", "size": 3408729},
      {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ")" +
                           d('2') + R"(", "size": 1024}
    ],
    "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
  })";
  auto found = refs(kOciManifest, body);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->blobs, (std::vector<std::string>{d('c'), d('1'), d('2')}));
  EXPECT_TRUE(found->manifests.empty());
  EXPECT_TRUE(found->subject.empty());
  // Docker's schema 2 has the same shape.
  EXPECT_EQ(refs(kDockerManifest, body), found);
}

TEST(ManifestReferencesTest, AnIndexKeepsEachChildOnceInOrder) {
  const std::string body =
      R"({"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
      {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ")" +
      d('a') + R"(", "size": 500, "platform": {"architecture": "amd64", "os": "linux"}},
      {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ")" +
      d('b') + R"(", "size": 500, "platform": {"architecture": "arm64", "os": "linux"}},
      {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ")" +
      d('a') +
      R"(", "size": 500, "platform": {"architecture": "amd64", "os": "linux", "variant": "v2"}}
    ]})";
  auto found = refs(kOciIndex, body);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->manifests, (std::vector<std::string>{d('a'), d('b')}));
  EXPECT_TRUE(found->blobs.empty());
  EXPECT_EQ(refs(kDockerList, body), found);
  // An empty index is an index.
  EXPECT_EQ(refs(kOciIndex, R"({"manifests": []})"), ManifestReferences{});
}

TEST(ManifestReferencesTest, AReferrerNamesItsSubjectAndAnArtifactMayHaveNoLayers) {
  const std::string body = R"({"schemaVersion": 2,
    "artifactType": "application/vnd.example.sbom",
    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": ")" +
                           d('e') + R"(", "size": 2},
    "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ")" +
                           d('f') + R"(", "size": 900}})";
  auto found = refs(kOciManifest, body);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->blobs, std::vector<std::string>{d('e')});
  EXPECT_EQ(found->subject, d('f'));
}

TEST(ManifestReferencesTest, ASha512DigestIsKept) {
  const std::string sha512 = "sha512:" + std::string(128, '9');
  auto found = refs(kOciManifest, R"({"config": {"digest": ")" + sha512 + R"("}, "layers": []})");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->blobs, std::vector<std::string>{sha512});
}

TEST(ManifestReferencesTest, WhatIsNotAManifestOfItsTypeIsRefusedWithTheReason) {
  EXPECT_THAT(refuse("application/json", "{}"), HasSubstr("not a manifest type"));
  EXPECT_THAT(refuse(kOciManifest, ""), HasSubstr("not a JSON object"));
  EXPECT_THAT(refuse(kOciManifest, "[1, 2]"), HasSubstr("not a JSON object"));
  EXPECT_THAT(refuse(kOciManifest, R"({"config": )"), HasSubstr("not a JSON object"));
  EXPECT_THAT(refuse(kOciManifest, R"({"layers": []})"), HasSubstr("no config"));
  EXPECT_THAT(refuse(kOciManifest, R"({"config": "x"})"), HasSubstr("config is not a descriptor"));
  EXPECT_THAT(refuse(kOciManifest, R"({"config": {"size": 2}})"),
              HasSubstr("config has no digest"));
  EXPECT_THAT(refuse(kOciManifest, R"({"config": {"digest": 7}})"),
              HasSubstr("config has no digest"));
  EXPECT_THAT(refuse(kOciManifest, R"({"config": {"digest": ")" + d('c') + R"("}, "layers": {}})"),
              HasSubstr("\"layers\" is not a list"));
  EXPECT_THAT(refuse(kOciManifest, R"({"config": {"digest": ")" + d('c') +
                                       R"("}, "layers": [{"digest": "sha256:../../etc"}]})"),
              HasSubstr("layers[0] has a malformed digest"));
  EXPECT_THAT(refuse(kOciManifest, R"({"config": {"digest": ")" + d('c') +
                                       R"("}, "layers": [{"digest": "blake3:)" +
                                       std::string(64, 'a') + R"("}]})"),
              HasSubstr("layers[0] has a digest of an algorithm the cache does not verify"));
  EXPECT_THAT(refuse(kOciIndex, R"({"config": {"digest": ")" + d('c') + R"("}})"),
              HasSubstr("no \"manifests\" list"));
  EXPECT_THAT(refuse(kOciIndex, R"({"manifests": [null]})"),
              HasSubstr("manifests[0] is not a descriptor"));
  EXPECT_THAT(refuse(kOciIndex, R"({"manifests": [], "subject": {"digest": "SHA256:x"}})"),
              HasSubstr("subject has a malformed digest"));
}

}  // namespace
}  // namespace pullthrough::proxy
