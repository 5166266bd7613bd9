#include "proxy/upstream/hop_fields.hpp"

#include <gtest/gtest.h>

namespace pullthrough::proxy {
namespace {

TEST(HopFieldsTest, TheConnectionsOwnFieldsAreHopByHopInAnyCase) {
  for (const char* name :
       {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer", "TRANSFER-ENCODING",
        "Upgrade", "Proxy-Authenticate", "proxy-authorization"}) {
    EXPECT_TRUE(is_hop_by_hop(name)) << name;
  }
}

TEST(HopFieldsTest, TheMessagesFieldsAreNot) {
  for (const char* name : {"Authorization", "WWW-Authenticate", "Location", "Range",
                           "Content-Range", "Content-Type", "Docker-Content-Digest", "Host",
                           "Content-Length", "Expect", "Connection-Extra", "", "te "}) {
    EXPECT_FALSE(is_hop_by_hop(name)) << name;
  }
}

}  // namespace
}  // namespace pullthrough::proxy
