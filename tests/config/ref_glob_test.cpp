#include "config/ref_glob.hpp"

#include <chrono>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pullthrough::config {
namespace {

using ::testing::HasSubstr;

RefGlob glob(const std::string& pattern) {
  std::string error;
  auto compiled = RefGlob::compile(pattern, error);
  EXPECT_TRUE(compiled) << pattern << ": " << error;
  if (!compiled) return *RefGlob::compile("never.invalid/never", error);
  return *compiled;
}

std::string compile_error(const std::string& pattern) {
  std::string error;
  auto compiled = RefGlob::compile(pattern, error);
  EXPECT_FALSE(compiled) << pattern << " compiled";
  return error;
}

TEST(RefGlobTest, DoubleStarAloneMatchesEveryRepositoryTaggedOrNot) {
  auto all = glob("**");
  EXPECT_TRUE(all.matches("quay.io/a"));
  EXPECT_TRUE(all.matches("quay.io/a/b/c", "v1"));
  EXPECT_TRUE(all.matches("localhost:5000/app", "latest"));
  EXPECT_FALSE(all.has_tag());
}

TEST(RefGlobTest, TrailingDoubleStarMatchesWhatIsBelowButNotTheRepositoryItself) {
  auto org = glob("quay.io/myorg/**");
  EXPECT_TRUE(org.matches("quay.io/myorg/app"));
  EXPECT_TRUE(org.matches("quay.io/myorg/team/app", "v2"));
  EXPECT_FALSE(org.matches("quay.io/myorg"));
  EXPECT_FALSE(org.matches("quay.io/myorgx/app"));
  EXPECT_FALSE(org.matches("ghcr.io/myorg/app"));
  EXPECT_FALSE(org.matches("quay.io/other/myorg/app"));
}

TEST(RefGlobTest, DoubleStarInsideMatchesZeroOrMoreSegments) {
  auto app = glob("quay.io/**/app");
  EXPECT_TRUE(app.matches("quay.io/app"));
  EXPECT_TRUE(app.matches("quay.io/a/app"));
  EXPECT_TRUE(app.matches("quay.io/a/b/app"));
  EXPECT_FALSE(app.matches("quay.io/a/b/app2"));
  EXPECT_FALSE(app.matches("quay.io/a/app/b"));
  auto leading = glob("**/library/*");
  EXPECT_TRUE(leading.matches("registry-1.docker.io/library/alpine"));
  EXPECT_FALSE(leading.matches("registry-1.docker.io/library/a/b"));
}

TEST(RefGlobTest, StarStaysWithinOneSegment) {
  auto one = glob("quay.io/*/app");
  EXPECT_TRUE(one.matches("quay.io/a/app"));
  EXPECT_TRUE(one.matches("quay.io/x-y.z_w/app"));
  EXPECT_FALSE(one.matches("quay.io/a/b/app"));
  EXPECT_FALSE(one.matches("quay.io/app"));
  auto hosts = glob("*.gcr.io/**");
  EXPECT_TRUE(hosts.matches("us.gcr.io/project/image"));
  EXPECT_TRUE(hosts.matches("europe-west1.gcr.io/p/i", "v1"));
  EXPECT_FALSE(hosts.matches("gcr.io/project/image"));  // "*." needs the dot
  auto prefix = glob("quay.io/team-*");
  EXPECT_TRUE(prefix.matches("quay.io/team-a"));
  EXPECT_TRUE(prefix.matches("quay.io/team-"));
  EXPECT_FALSE(prefix.matches("quay.io/team-a/x"));
}

TEST(RefGlobTest, ATagPartMatchesTaggedReferencesOnly) {
  auto rc = glob("registry-1.docker.io/library/*:*-rc*");
  EXPECT_TRUE(rc.has_tag());
  EXPECT_TRUE(rc.matches("registry-1.docker.io/library/alpine", "3.20-rc1"));
  EXPECT_TRUE(rc.matches("registry-1.docker.io/library/alpine", "1-r-rc"));
  EXPECT_FALSE(rc.matches("registry-1.docker.io/library/alpine", "3.20"));
  EXPECT_FALSE(rc.matches("registry-1.docker.io/library/alpine"));  // untagged content
  EXPECT_FALSE(rc.matches("registry-1.docker.io/library/a/b", "1-rc1"));
  auto latest = glob("**:latest");
  EXPECT_TRUE(latest.matches("quay.io/a/b", "latest"));
  EXPECT_FALSE(latest.matches("quay.io/a/b", "latest2"));
  EXPECT_FALSE(latest.matches("quay.io/a/b"));
  // Tags are case-sensitive, hosts are not.
  EXPECT_FALSE(latest.matches("quay.io/a", "Latest"));
  auto any = glob("quay.io/x:**");
  EXPECT_TRUE(any.matches("quay.io/x", "whatever"));
}

TEST(RefGlobTest, AColonBeforeTheFirstSlashIsTheHostsPort) {
  auto port = glob("localhost:5000/app");
  EXPECT_FALSE(port.has_tag());
  EXPECT_TRUE(port.matches("localhost:5000/app"));
  EXPECT_TRUE(port.matches("localhost:5000/app", "v1"));
  EXPECT_FALSE(port.matches("localhost:5001/app"));
  auto tagged = glob("localhost:5000/app:v*");
  EXPECT_TRUE(tagged.matches("localhost:5000/app", "v1"));
  EXPECT_FALSE(tagged.matches("localhost:5000/app", "1"));
}

TEST(RefGlobTest, HostsCompareWithoutCase) {
  EXPECT_TRUE(glob("Quay.IO/x").matches("quay.io/x"));
  EXPECT_EQ(glob("Quay.IO/x").pattern(), "Quay.IO/x");  // reported as written
}

TEST(RefGlobTest, BacktrackingFindsALaterMatchAndStaysFast) {
  EXPECT_TRUE(glob("quay.io/a*b*c").matches("quay.io/axxbyybc"));
  EXPECT_FALSE(glob("quay.io/a*b*c").matches("quay.io/axxbyy"));
  // Many stars against a long near miss: greedy matching with one resume point, no blow-up.
  const std::string name(200, 'a');
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(glob("quay.io/*a*a*a*a*a*a*a*a*a*a*b").matches("quay.io/" + name));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  // Many "**" against many segments.
  std::string deep = "quay.io";
  for (int i = 0; i < 60; ++i) deep += "/s";
  EXPECT_TRUE(glob("quay.io/**/s/**/s/**/s/**").matches(deep));
  EXPECT_FALSE(glob("quay.io/**/s/**/t/**").matches(deep));
}

TEST(RefGlobTest, MalformedPatternsSayWhatIsWrong) {
  EXPECT_THAT(compile_error(""), HasSubstr("empty pattern"));
  EXPECT_THAT(compile_error("quay.io//x"), HasSubstr("empty path segment"));
  EXPECT_THAT(compile_error("quay.io/x/"), HasSubstr("empty path segment"));
  EXPECT_THAT(compile_error("/x"), HasSubstr("empty path segment"));
  EXPECT_THAT(compile_error("quay.io/a**/b"), HasSubstr("whole path segment"));
  EXPECT_THAT(compile_error("quay.io/***"), HasSubstr("whole path segment"));
  EXPECT_THAT(compile_error("quay.io/App"), HasSubstr("lower case"));
  EXPECT_THAT(compile_error("quay.io/x:"), HasSubstr("nothing after ':'"));
  EXPECT_THAT(compile_error("quay.io/x@sha256:abc"), HasSubstr("digest"));
  EXPECT_THAT(compile_error("quay.io/x:ta g"), HasSubstr("' ' cannot be in a tag"));
  EXPECT_THAT(compile_error("quay.io/x y"), HasSubstr("' ' cannot be in a repository name"));
  EXPECT_THAT(compile_error("quay.io/../etc"), HasSubstr("a path segment of dots"));
  EXPECT_THAT(compile_error("quay.io/" + std::string(600, 'a')), HasSubstr("longer than 512"));
}

}  // namespace
}  // namespace pullthrough::config
