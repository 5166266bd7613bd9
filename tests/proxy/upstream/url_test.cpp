// URLs from upstream answers: token realms (parse_absolute_url) and redirects (resolve_location).
#include "proxy/upstream/url.hpp"

#include <gtest/gtest.h>

namespace pullthrough::proxy {
namespace {

TEST(OriginTest, HostFieldLeavesOutTheDefaultPortAndBracketsIpv6) {
  EXPECT_EQ((Origin{"https", "quay.io", 443}).host_field(), "quay.io");
  EXPECT_EQ((Origin{"https", "quay.io", 8443}).host_field(), "quay.io:8443");
  EXPECT_EQ((Origin{"http", "quay.io", 80}).host_field(), "quay.io");
  EXPECT_EQ((Origin{"http", "::1", 5000}).host_field(), "[::1]:5000");
  // The pool's key always names the port, so :443 and the default are one origin.
  EXPECT_EQ((Origin{"https", "quay.io", 443}).key(), "https://quay.io:443");
  EXPECT_EQ((Origin{"https", "::1", 443}).url(), "https://[::1]");
}

TEST(UrlTest, AbsoluteUrls) {
  auto realm = parse_absolute_url("https://Auth.Docker.IO/token?service=registry.docker.io");
  ASSERT_TRUE(realm);
  EXPECT_EQ(realm->origin, (Origin{"https", "auth.docker.io", 443}));
  EXPECT_EQ(realm->target, "/token?service=registry.docker.io");

  auto bare = parse_absolute_url("http://127.0.0.1:5000");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->origin, (Origin{"http", "127.0.0.1", 5000}));
  EXPECT_EQ(bare->target, "/");

  auto query_only = parse_absolute_url("https://h?x=1#frag");
  ASSERT_TRUE(query_only);
  EXPECT_EQ(query_only->target, "/?x=1");

  auto v6 = parse_absolute_url("https://[2001:DB8::1]:8443/v2/");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->origin, (Origin{"https", "2001:db8::1", 8443}));
}

TEST(UrlTest, AbsoluteUrlsThatCannotBeCarriedSafelyAreRefused) {
  for (const char* bad : {
           "ftp://host/x",            // another scheme
           "https://user:pw@host/x",  // userinfo
           "https://host:0/", "https://host:65536/", "https://host:/", "https://host:12a/",
           "https://[::1/", "https://[1.2.3.4]/", "https://[::1]x/", "https://ho st/",
           "https://host/a b",                // spaces
           "https://host/\r\nX-Injected: 1",  // a header injection
           "https://h\xc3\xa9st/",            // a byte outside ASCII
           "https://",                        // no host
           "//host/x",                        // no scheme
       }) {
    EXPECT_FALSE(parse_absolute_url(bad)) << bad;
  }
}

TEST(UrlTest, RedirectLocationsOfEveryForm) {
  const Origin base{"https", "registry-1.docker.io", 443};
  const std::string target = "/v2/library/alpine/blobs/sha256:abc?x=1";

  auto absolute = resolve_location(base, target, "https://cdn.example:8443/blob?sig=s");
  ASSERT_TRUE(absolute);
  EXPECT_EQ(absolute->origin, (Origin{"https", "cdn.example", 8443}));
  EXPECT_EQ(absolute->target, "/blob?sig=s");

  auto scheme_relative = resolve_location(base, target, "//cdn.example/blob");
  ASSERT_TRUE(scheme_relative);
  EXPECT_EQ(scheme_relative->origin, (Origin{"https", "cdn.example", 443}));

  auto path = resolve_location(base, target, "/v2/other?y=2#frag");
  ASSERT_TRUE(path);
  EXPECT_EQ(path->origin, base);
  EXPECT_EQ(path->target, "/v2/other?y=2");

  auto query = resolve_location(base, target, "?y=2");
  ASSERT_TRUE(query);
  EXPECT_EQ(query->target, "/v2/library/alpine/blobs/sha256:abc?y=2");
}

TEST(UrlTest, RelativeLocationsAreResolvedAgainstTheRequestsDirectory) {
  const Origin base{"https", "quay.io", 443};
  auto relative = resolve_location(base, "/v2/a/blobs/sha256:abc", "next/part?z");
  ASSERT_TRUE(relative);
  EXPECT_EQ(relative->origin, base);
  EXPECT_EQ(relative->target, "/v2/a/blobs/next/part?z");
}

TEST(UrlTest, UnusableLocationsAreRefused) {
  const Origin base{"https", "quay.io", 443};
  // "other:part": a colon before any slash makes a scheme (RFC 3986 4.2), one that is not http.
  for (const char* bad : {"", "#only-a-fragment", "ftp://elsewhere/x", "/a\r\nb", "/a b",
                          "https://user@elsewhere/", "other:part"}) {
    EXPECT_FALSE(resolve_location(base, "/v2/", bad)) << bad;
  }
}

TEST(UrlTest, WithoutQueryKeepsSignedUrlsOutOfLogs) {
  EXPECT_EQ(without_query("/blob?X-Amz-Signature=secret"), "/blob");
  EXPECT_EQ(without_query("/v2/"), "/v2/");
}

}  // namespace
}  // namespace pullthrough::proxy
