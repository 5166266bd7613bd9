#include "proxy/lifecycle/prefetch.hpp"

#include <string>

#include <gtest/gtest.h>

namespace pullthrough::proxy {
namespace {

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');
const std::string kC = "sha256:" + std::string(64, 'c');

TEST(PlatformFilterTest, ParsesOsArchVariantAndAll) {
  std::string error;
  auto arm = PlatformFilter::parse("linux/arm64/v8", error);
  ASSERT_TRUE(arm) << error;
  EXPECT_EQ(arm->os, "linux");
  EXPECT_EQ(arm->architecture, "arm64");
  EXPECT_EQ(arm->variant, "v8");
  EXPECT_EQ(arm->to_string(), "linux/arm64/v8");
  EXPECT_TRUE(PlatformFilter::parse("all", error)->all);
  for (const char* bad : {"", "linux", "linux/", "/amd64", "linux/amd64/v8/x", "Linux/amd64",
                          "linux/amd 64", "linux/amd64?"}) {
    EXPECT_FALSE(PlatformFilter::parse(bad, error)) << bad;
    EXPECT_NE(error.find("os/arch"), std::string::npos);
  }
}

TEST(PlatformFilterTest, AnArchitectureWithoutVariantTakesAnyVariant) {
  std::string error;
  auto arm = *PlatformFilter::parse("linux/arm64", error);
  EXPECT_TRUE(matches(arm, "linux/arm64"));
  EXPECT_TRUE(matches(arm, "linux/arm64/v8"));
  EXPECT_FALSE(matches(arm, "linux/arm"));
  EXPECT_FALSE(matches(arm, "linux/arm64x"));
  EXPECT_FALSE(matches(arm, "unknown"));
  auto v7 = *PlatformFilter::parse("linux/arm/v7", error);
  EXPECT_TRUE(matches(v7, "linux/arm/v7"));
  EXPECT_FALSE(matches(v7, "linux/arm/v6"));
  EXPECT_TRUE(matches(*PlatformFilter::parse("all", error), "unknown"));
}

TEST(IndexChildrenTest, ListsEachChildWithItsPlatform) {
  auto children = index_children(R"({"manifests":[
      {"digest":")" + kA + R"(","platform":{"os":"linux","architecture":"amd64"}},
      {"digest":")" + kB + R"(","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
      {"digest":")" + kC + R"(","annotations":{"vnd.docker.reference.type":"attestation"}}]})");
  ASSERT_TRUE(children);
  ASSERT_EQ(children->size(), 3U);
  EXPECT_EQ((*children)[0].platform, "linux/amd64");
  EXPECT_EQ((*children)[1].platform, "linux/arm64/v8");
  EXPECT_EQ((*children)[2].digest, kC);
  EXPECT_EQ((*children)[2].platform, "unknown");
  EXPECT_FALSE(index_children(R"({"layers":[]})"));
  EXPECT_FALSE(index_children(R"({"manifests":[{"size":1}]})"));
  EXPECT_FALSE(index_children("not json"));
}

TEST(ImageBlobsTest, NamesTheConfigThenEachLayerOnceWithSizes) {
  auto blobs = image_blobs(R"({"config":{"digest":")" + kA + R"(","size":7},"layers":[
      {"digest":")" + kB + R"(","size":100},{"digest":")" +
                           kB + R"(","size":100},
      {"digest":")" + kC + R"(","size":0}]})");
  ASSERT_TRUE(blobs);
  ASSERT_EQ(blobs->size(), 3U);
  EXPECT_EQ((*blobs)[0].digest, kA);
  EXPECT_EQ((*blobs)[0].size, 7U);
  EXPECT_EQ((*blobs)[1].digest, kB);
  EXPECT_EQ((*blobs)[2].size, 0U);
  EXPECT_FALSE(image_blobs(R"({"layers":[]})"));  // no config
  EXPECT_FALSE(image_blobs(R"({"config":{"digest":"sha256:short","size":1}})"));
  EXPECT_FALSE(image_blobs(R"({"config":{"digest":")" + kA + R"(","size":-1}})"));
  EXPECT_FALSE(image_blobs(R"({"config":{"digest":")" + kA + R"(","size":1},"layers":{}})"));
}

}  // namespace
}  // namespace pullthrough::proxy
