#include "certs/ca_page.hpp"

#include "core/asio.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace pullthrough::certs {
namespace {

using ::testing::EndsWith;
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
    return send(handler_, target, verb, host);
  }

  static core::HttpResponse send(const core::HttpHandler& handler, std::string_view target,
                                 http::verb verb, std::string_view host = "cache.lan",
                                 std::string_view peer = "192.0.2.99:5555") {
    core::HttpRequest request{verb, target, 11};
    if (!host.empty()) request.set(http::field::host, host);
    return handler(core::HttpExchange{request, *core::parse_endpoint(peer), local()});
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

TEST_F(CaPageTest, IndexSaysInstallShEnrolls) {
  auto body = get("/").body();
  auto install = body.find("/install.sh | sh");
  auto enroll = body.find("Enroll this machine: install.sh does that");
  ASSERT_NE(install, std::string::npos);
  ASSERT_NE(enroll, std::string::npos);
  EXPECT_LT(install, enroll);
  EXPECT_THAT(body, HasSubstr("(POST http://cache.lan/enroll)"));
}

// Each manual section ends with its own enroll command, before the next section starts.
TEST_F(CaPageTest, IndexGivesMacWindowsAndKubernetesStepsEachEndingWithEnroll) {
  auto body = get("/").body();
  auto linux_by_hand = body.find("By hand on Linux");
  auto mac = body.find("macOS with Docker Desktop");
  auto windows = body.find("Windows with Docker Desktop");
  auto kubernetes = body.find("Kubernetes node");
  ASSERT_NE(linux_by_hand, std::string::npos);
  ASSERT_NE(mac, std::string::npos);
  ASSERT_NE(windows, std::string::npos);
  ASSERT_NE(kubernetes, std::string::npos);
  ASSERT_LT(linux_by_hand, mac);
  ASSERT_LT(mac, windows);
  ASSERT_LT(windows, kubernetes);
  auto section = [&](std::size_t from, std::size_t to) { return body.substr(from, to - from); };

  EXPECT_THAT(section(linux_by_hand, mac), HasSubstr("curl -X POST http://cache.lan/enroll\n"));

  auto macos = section(mac, windows);
  EXPECT_THAT(macos, HasSubstr("curl -fsSLo pullthrough.crt http://cache.lan/ca.crt"));
  EXPECT_THAT(macos, HasSubstr("sudo security add-trusted-cert -d -r trustRoot \\\n"
                               "      -k /Library/Keychains/System.keychain pullthrough.crt"));
  EXPECT_THAT(macos, HasSubstr("Restart Docker Desktop"));
  EXPECT_THAT(macos, EndsWith("curl -X POST http://cache.lan/enroll\n\n"));

  auto win = section(windows, kubernetes);
  EXPECT_THAT(win, HasSubstr("run as administrator"));
  EXPECT_THAT(win, HasSubstr("certutil -addstore -f Root pullthrough.crt"));
  EXPECT_THAT(win, HasSubstr("Restart Docker Desktop"));
  EXPECT_THAT(win, EndsWith("curl.exe -X POST http://cache.lan/enroll\n\n"));

  auto node = body.substr(kubernetes);
  EXPECT_THAT(node, HasSubstr("/etc/containerd/certs.d/<registry>/ca.crt"));
  EXPECT_THAT(node, HasSubstr("ca = \"/etc/containerd/certs.d/<registry>/ca.crt\""));
  EXPECT_THAT(node, HasSubstr("config_path = \"/etc/containerd/certs.d\""));
  EXPECT_THAT(node, HasSubstr("restart containerd"));
  EXPECT_THAT(node, EndsWith("curl -X POST http://cache.lan/enroll\n"));
}

class CaPageEnrollTest : public CaPageTest {
 protected:
  std::vector<core::IpAddress> enrolled_;
  EnrollOutcome outcome_{http::status::ok, "enrolled", std::nullopt};
  core::HttpHandler enrolling_ =
      make_ca_page_handler(ca_, {"quay.io", "docker.io"}, [this](const core::IpAddress& client) {
        enrolled_.push_back(client);
        return outcome_;
      });
};

TEST_F(CaPageEnrollTest, PostCallsTheCallbackWithTheClientAndRelaysItsAnswer) {
  auto res = send(enrolling_, "/enroll", http::verb::post);
  ASSERT_EQ(enrolled_.size(), 1U);
  EXPECT_EQ(enrolled_[0], *core::parse_ip("192.0.2.99"));
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), "enrolled\n");
  EXPECT_EQ(res[http::field::content_type], "text/plain; charset=utf-8");
  EXPECT_EQ(res[http::field::cache_control], "no-store");
  EXPECT_EQ(res.count(http::field::retry_after), 0U);
}

TEST_F(CaPageEnrollTest, RelaysARefusalWithRetryAfter) {
  outcome_ = {http::status::too_many_requests, "too many enrollments; try again in a minute",
              std::chrono::seconds(60)};
  auto res = send(enrolling_, "/enroll", http::verb::post);
  EXPECT_EQ(res.result(), http::status::too_many_requests);
  EXPECT_EQ(res.body(), "too many enrollments; try again in a minute\n");
  EXPECT_EQ(res[http::field::retry_after], "60");

  outcome_ = {http::status::forbidden, "not allowed", std::nullopt};
  res = send(enrolling_, "/enroll", http::verb::post);
  EXPECT_EQ(res.result(), http::status::forbidden);
  EXPECT_EQ(res.body(), "not allowed\n");
  EXPECT_EQ(res.count(http::field::retry_after), 0U);
}

TEST_F(CaPageEnrollTest, NegativeRetryAfterIsSentAsZero) {
  outcome_ = {http::status::too_many_requests, "later", std::chrono::seconds(-5)};
  EXPECT_EQ(send(enrolling_, "/enroll", http::verb::post)[http::field::retry_after], "0");
}

TEST_F(CaPageEnrollTest, AnIpv4ClientOnADualStackSocketIsPassedAsIpv4) {
  send(enrolling_, "/enroll", http::verb::post, "cache.lan", "[::ffff:192.0.2.99]:5555");
  send(enrolling_, "/enroll", http::verb::post, "cache.lan", "[fd00::7]:5555");
  ASSERT_EQ(enrolled_.size(), 2U);
  EXPECT_TRUE(enrolled_[0].is_v4());
  EXPECT_EQ(enrolled_[0], *core::parse_ip("192.0.2.99"));
  EXPECT_EQ(enrolled_[1], *core::parse_ip("fd00::7"));
}

TEST_F(CaPageEnrollTest, AQueryStringIsIgnoredAsOnTheOtherPaths) {
  EXPECT_EQ(send(enrolling_, "/enroll?from=script", http::verb::post).result(), http::status::ok);
  EXPECT_EQ(enrolled_.size(), 1U);
}

// GET and HEAD must be safe (RFC 9110 section 9.2.1): a browser prefetching links must not enroll.
TEST_F(CaPageEnrollTest, OnlyPostEnrolls) {
  for (auto verb : {http::verb::get, http::verb::head, http::verb::put, http::verb::delete_,
                    http::verb::options}) {
    auto res = send(enrolling_, "/enroll", verb);
    EXPECT_EQ(res.result(), http::status::method_not_allowed) << http::to_string(verb);
    EXPECT_EQ(res[http::field::allow], "POST") << http::to_string(verb);
  }
  EXPECT_TRUE(enrolled_.empty());
}

TEST_F(CaPageEnrollTest, TheOtherPathsAreUnchanged) {
  EXPECT_EQ(send(enrolling_, "/ca.crt", http::verb::get).body(), ca_.certificate_pem());
  EXPECT_EQ(send(enrolling_, "/", http::verb::get).body(), get("/").body());
  for (const char* target : {"/enroll/", "/enroll/x", "/ENROLL", "/enrollx"}) {
    EXPECT_EQ(send(enrolling_, target, http::verb::get).result(), http::status::not_found)
        << target;
    auto res = send(enrolling_, target, http::verb::post);
    EXPECT_EQ(res.result(), http::status::method_not_allowed) << target;
    EXPECT_EQ(res[http::field::allow], "GET, HEAD") << target;
  }
  auto res = send(enrolling_, "/ca.crt", http::verb::post);
  EXPECT_EQ(res.result(), http::status::method_not_allowed);
  EXPECT_EQ(res[http::field::allow], "GET, HEAD");
  EXPECT_TRUE(enrolled_.empty());
}

// Without a callback /enroll is one more unknown path, answered exactly as /v2/ is.
TEST_F(CaPageTest, EnrollIsNotServedWithoutACallback) {
  EXPECT_EQ(get("/enroll").result(), http::status::not_found);
  auto unknown = get("/v2/", http::verb::post);
  auto res = get("/enroll", http::verb::post);
  EXPECT_EQ(res.result(), unknown.result());
  EXPECT_EQ(res[http::field::allow], unknown[http::field::allow]);
  EXPECT_EQ(res.body(), unknown.body());
}

}  // namespace
}  // namespace pullthrough::certs
