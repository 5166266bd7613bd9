// Content negotiation on manifest media types.
#include "proxy/media_types.hpp"

#include <gtest/gtest.h>

namespace pullthrough::proxy {
namespace {

TEST(MediaTypesTest, AcceptMatching) {
  EXPECT_TRUE(accepts("", kOciIndex));
  EXPECT_TRUE(accepts("*/*", kOciIndex));
  EXPECT_TRUE(accepts("application/*", kOciIndex));
  EXPECT_TRUE(accepts("text/plain, APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON; q=0.9", kOciIndex));
  EXPECT_FALSE(accepts(std::string(kDockerManifest), kOciIndex));
  EXPECT_FALSE(accepts("application/vnd.oci.image.index.v1+json;q=0", kOciIndex));
  EXPECT_FALSE(accepts("application/vnd.oci.image.index.v1+json;q=0.000", kOciIndex));
  EXPECT_TRUE(accepts("application/vnd.oci.image.index.v1+json;q=0.001", kOciIndex));
  EXPECT_FALSE(accepts("text/*", kOciIndex));
}

// RFC 9110 12.5.1: a more specific range overrides a wider one, in either order.
TEST(MediaTypesTest, TheMostSpecificRangeDecides) {
  const std::string index(kOciIndex);
  EXPECT_FALSE(accepts("*/*, " + index + ";q=0", kOciIndex));
  EXPECT_FALSE(accepts(index + ";q=0, application/*", kOciIndex));
  EXPECT_TRUE(accepts("*/*;q=0, " + index, kOciIndex));
  EXPECT_FALSE(accepts("*/*;q=0, " + index, kOciManifest));
  EXPECT_FALSE(accepts("application/*;q=0, */*", kOciIndex));
  EXPECT_TRUE(accepts(index + ";q=0, " + index, kOciIndex));
}

TEST(MediaTypesTest, TheSetOfAcceptedManifestTypes) {
  EXPECT_EQ(accepted_manifest_types(""), kAllManifestTypes);
  EXPECT_EQ(accepted_manifest_types("*/*"), kAllManifestTypes);
  EXPECT_EQ(accepted_manifest_types(upstream_accept()), kAllManifestTypes);
  EXPECT_EQ(accepted_manifest_types("text/plain"), 0);
  EXPECT_EQ(accepted_manifest_types(std::string(kOciManifest)), 0b0100);
  EXPECT_EQ(accepted_manifest_types(std::string(kDockerList) + ", " + std::string(kOciIndex)),
            0b0011);
  // q=0 excludes a type that a wildcard would admit.
  EXPECT_EQ(accepted_manifest_types("*/*, " + std::string(kDockerList) + ";q=0"), 0b1101);
}

TEST(MediaTypesTest, AnAcceptForEachSetAdmitsExactlyThatSet) {
  EXPECT_EQ(accept_of(kAllManifestTypes), upstream_accept());
  EXPECT_EQ(accept_of(0b0100), kOciManifest);
  EXPECT_EQ(accept_of(0), "");
  for (unsigned types = 1; types <= kAllManifestTypes; ++types) {
    auto set = static_cast<ManifestTypeSet>(types);
    EXPECT_EQ(accepted_manifest_types(accept_of(set)), set) << accept_of(set);
  }
}

TEST(MediaTypesTest, MediaTypeWithoutParameters) {
  EXPECT_EQ(media_type_of(" Application/JSON ; charset=utf-8"), "application/json");
  EXPECT_EQ(media_type_of(""), "");
  EXPECT_EQ(media_type_of(std::string(kOciIndex)), kOciIndex);
}

}  // namespace
}  // namespace pullthrough::proxy
