#include "certs/ca_page.hpp"

#include "core/asio.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace pullthrough::certs {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

core::Endpoint local() { return *core::parse_endpoint("192.0.2.10:80"); }

TEST(BaseUrlTest, UsesAPlainHostHeader) {
  EXPECT_EQ(base_url("cache.lan", local()), "http://cache.lan");
  EXPECT_EQ(base_url("192.0.2.10:8080", local()), "http://192.0.2.10:8080");
  EXPECT_EQ(base_url("[fd00::1]:80", local()), "http://[fd00::1]:80");
  EXPECT_EQ(base_url("[fd00::1]", local()), "http://[fd00::1]");
}

TEST(BaseUrlTest, ShellInjectionThroughHostFallsBackToTheLocalAddress) {
  for (const char* host : {"", "a b", "x;reboot", "$(id)", "`id`", "a'b", "a\"b", "host:80x",
                           "host:", "[::1;id]", "[fd00::1]x", "a\nb", "host:123456"}) {
    EXPECT_EQ(base_url(host, local()), "http://192.0.2.10") << host;
  }
  EXPECT_EQ(base_url("", *core::parse_endpoint("[fd00::5]:8080")), "http://[fd00::5]:8080");
}

class CaPageTest : public ::testing::Test {
 protected:
  core::HttpResponse get(std::string_view target, http::verb verb = http::verb::get,
                         std::string_view host = "cache.lan") {
    core::HttpRequest request{verb, target, 11};
    if (!host.empty()) request.set(http::field::host, host);
    return handler_(core::HttpExchange{request, *core::parse_endpoint("192.0.2.99:5555"), local()});
  }

  testing::ScratchDir dir_;
  CertificateAuthority ca_ =
      CertificateAuthority::load_or_create(dir_.path() / "ca", "box", testing::fixed_now());
  core::HttpHandler handler_ = make_ca_page_handler(ca_, {"quay.io", "docker.io"});
};

TEST_F(CaPageTest, ServesThePemCertificate) {
  auto res = get("/ca.crt");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "application/x-pem-file");
  EXPECT_EQ(res.body(), ca_.certificate_pem());
}

TEST_F(CaPageTest, ServesTheDerCertificate) {
  auto res = get("/ca.der?x=1");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "application/pkix-cert");
  const auto* data = reinterpret_cast<const unsigned char*>(res.body().data());
  core::X509Ptr parsed(d2i_X509(nullptr, &data, static_cast<long>(res.body().size())));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(X509_cmp(parsed.get(), &ca_.certificate()), 0);
}

TEST_F(CaPageTest, InstallScriptHasThisApplianceFilledIn) {
  auto res = get("/install.sh");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_THAT(res.body(), HasSubstr("URL=http://cache.lan\n"));
  EXPECT_THAT(res.body(), HasSubstr("NAMES=\"quay.io docker.io\"\n"));
  EXPECT_THAT(res.body(), Not(HasSubstr("URL=__PULLTHROUGH")));
  EXPECT_THAT(res.body(), HasSubstr("#!/bin/sh"));
}

TEST_F(CaPageTest, IndexExplainsEachClient) {
  auto res = get("/");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_THAT(res.body(), HasSubstr("curl -fsSL http://cache.lan/install.sh | sh"));
  EXPECT_THAT(res.body(), HasSubstr("quay.io"));
  EXPECT_THAT(res.body(), HasSubstr(describe(ca_.certificate()).sha256_fingerprint));
  EXPECT_THAT(res.body(), HasSubstr("/etc/docker/certs.d"));
  EXPECT_THAT(res.body(), HasSubstr("/etc/containers/certs.d"));
  EXPECT_THAT(res.body(), HasSubstr("update-ca-trust"));
}

TEST_F(CaPageTest, NothingElseIsServed) {
  for (const char* target : {"/v2/", "/ca.key", "/../ca/ca.key", "/install.sh/x", "/CA.CRT"}) {
    EXPECT_EQ(get(target).result(), http::status::not_found) << target;
  }
  auto res = get("/ca.crt", http::verb::post);
  EXPECT_EQ(res.result(), http::status::method_not_allowed);
  EXPECT_EQ(res[http::field::allow], "GET, HEAD");
}

}  // namespace
}  // namespace pullthrough::certs
