#include "health/cache_probe.hpp"

#include "core/asio.hpp"

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <gtest/gtest.h>

#include "certs/authority.hpp"
#include "tests/certs/test_support.hpp"

namespace pullthrough::health {
namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;

// A cache stand-in on 127.0.0.1 port 0: TLS with a leaf for `name`, answering GET /v2/ with
// `status` and, when set, a Pullthrough-Storage header; or accepting and never answering.
class FakeCache {
 public:
  struct Options {
    unsigned status = 200;
    std::string storage;  // the header's value; empty: no header
    bool silent = false;  // accept, then never speak (a stopped process keeps its socket)
    std::string raw;      // when set: these bytes as the whole answer
  };

  FakeCache(const certs::KeyedCertificate& leaf, Options options) : options_(std::move(options)) {
    SSL_CTX_use_certificate(tls_.native_handle(), leaf.cert.get());
    SSL_CTX_use_PrivateKey(tls_.native_handle(), leaf.key.get());
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeCache() {
    io_.stop();
    thread_.join();
  }
  FakeCache(const FakeCache&) = delete;
  FakeCache& operator=(const FakeCache&) = delete;

  core::Endpoint endpoint() const {
    return core::Endpoint{asio::ip::make_address("127.0.0.1"), port_};
  }
  std::string sni() const {
    std::lock_guard lock(mutex_);
    return sni_;
  }
  std::string host() const {
    std::lock_guard lock(mutex_);
    return host_;
  }
  std::string target() const {
    std::lock_guard lock(mutex_);
    return target_;
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      tcp::socket socket =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      if (options_.silent) {
        held_.push_back(std::move(socket));
        continue;
      }
      asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), tls_);
    error_code ec;
    co_await stream.async_handshake(ssl::stream_base::server,
                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    const char* name = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
    beast::flat_buffer buffer;
    http::request<http::empty_body> request;
    co_await http::async_read(stream, buffer, request,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    {
      std::lock_guard lock(mutex_);
      sni_ = name != nullptr ? name : "";
      host_ = std::string(request[http::field::host]);
      target_ = std::string(request.target());
    }
    if (!options_.raw.empty()) {
      co_await asio::async_write(stream, asio::buffer(options_.raw),
                                 asio::redirect_error(asio::use_awaitable, ec));
      co_return;
    }
    http::response<http::string_body> response{static_cast<http::status>(options_.status), 11};
    response.set("Docker-Distribution-API-Version", "registry/2.0");
    if (!options_.storage.empty()) response.set("Pullthrough-Storage", options_.storage);
    response.body() = "{}";
    response.prepare_payload();
    co_await http::async_write(stream, response, asio::redirect_error(asio::use_awaitable, ec));
  }

  Options options_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::uint16_t port_ = acceptor_.local_endpoint().port();
  ssl::context tls_{ssl::context::tls_server};
  std::vector<tcp::socket> held_;
  mutable std::mutex mutex_;
  std::string sni_;
  std::string host_;
  std::string target_;
  std::thread thread_;
};

// Two CAs, made once: key generation is the slow part of a test's setup.
struct Authorities {
  certs::testing::ScratchDir dir;
  certs::CertificateAuthority ours = certs::CertificateAuthority::load_or_create(
      dir.path() / "ours", "cache.test", std::chrono::system_clock::now());
  certs::CertificateAuthority other = certs::CertificateAuthority::load_or_create(
      dir.path() / "other", "elsewhere.test", std::chrono::system_clock::now());
};

class TlsCacheProbeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { authorities_ = new Authorities(); }
  static void TearDownTestSuite() {
    delete authorities_;
    authorities_ = nullptr;
  }

  static certs::KeyedCertificate leaf(const certs::CertificateAuthority& ca,
                                      std::string_view name = "quay.io") {
    return ca.issue(name, std::chrono::system_clock::now(), std::chrono::hours(24));
  }

  // Runs one check on an io_context of its own.
  static CheckResult run(TlsCacheProbe& probe, const core::Endpoint& target,
                         std::chrono::milliseconds timeout = 2s) {
    asio::io_context io;
    std::promise<CheckResult> result;
    asio::co_spawn(io, probe.check(target, timeout),
                   [&](const std::exception_ptr& error, CheckResult r) {
                     if (error) {
                       result.set_exception(error);
                     } else {
                       result.set_value(std::move(r));
                     }
                   });
    io.run();
    return result.get_future().get();
  }

  static Authorities* authorities_;
};

Authorities* TlsCacheProbeTest::authorities_ = nullptr;

TEST_F(TlsCacheProbeTest, PassesOnA200FromACertificateOfOurCa) {
  FakeCache cache(leaf(authorities_->ours), {});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  EXPECT_TRUE(probe.verifies());
  auto result = run(probe, cache.endpoint());
  EXPECT_TRUE(result.ok) << result.detail;
  EXPECT_EQ(result.detail, "GET /v2/ answered 200");
}

TEST_F(TlsCacheProbeTest, SendsTheInterceptedNameAsSniAndHost) {
  FakeCache cache(leaf(authorities_->ours), {});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  ASSERT_TRUE(run(probe, cache.endpoint()).ok);
  EXPECT_EQ(cache.sni(), "quay.io");
  EXPECT_EQ(cache.host(), "quay.io");
  EXPECT_EQ(cache.target(), "/v2/");
}

TEST_F(TlsCacheProbeTest, FailsOnAnAnswerOtherThan200) {
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 503, .storage = {}, .silent = false, .raw = {}});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "GET /v2/ answered 503 Service Unavailable");
}

TEST_F(TlsCacheProbeTest, FailsWhenTheCacheReportsItsStorageFull) {
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 200, .storage = "full", .silent = false, .raw = {}});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "the cache reports its storage full");
}

TEST_F(TlsCacheProbeTest, PassesWhenTheCacheReportsItsStorageOk) {
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 200, .storage = "ok", .silent = false, .raw = {}});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  EXPECT_TRUE(run(probe, cache.endpoint()).ok);
}

// HTTP allows bytes above 0x7f in a header value (control characters fail the parse instead).
TEST_F(TlsCacheProbeTest, UnprintableBytesInTheStorageHeaderAreNotLogged) {
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 200, .storage = "full\xff\x80.", .silent = false, .raw = {}});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "the cache reports its storage full??.");
}

TEST_F(TlsCacheProbeTest, MalformedAnswerFails) {
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 200, .storage = "bad\x1b[31mred", .silent = false, .raw = {}});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "reading the answer to GET /v2/: bad value");
}

TEST_F(TlsCacheProbeTest, ACacheThatSaysItIsLeavingFailsAndIsMarkedLeaving) {
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 200,
                   .storage = {},
                   .silent = false,
                   .raw = "HTTP/1.1 200 OK\r\nPullthrough-Storage: ok\r\n"
                          "Pullthrough-Leaving: shutdown\r\nContent-Length: 2\r\n\r\n{}"});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_TRUE(result.leaving);
  EXPECT_EQ(result.detail, "the cache is leaving (shutdown)");
}

TEST_F(TlsCacheProbeTest, OtherFailuresAreNotMarkedLeaving) {
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 503, .storage = {}, .silent = false, .raw = {}});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.leaving);
}

// Found by cache_probe_fuzz: with a string body, Beast 1.74 let a Content-Length this large past
// body_limit and reserved it (4e18 bytes). The probe reads the header only: the length is refused
// there, and nothing is ever sized by it.
TEST_F(TlsCacheProbeTest, HugeContentLengthIsNeverAllocated) {
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 200,
                   .storage = {},
                   .silent = false,
                   .raw = "HTTP/1.1 200 OK\r\nPullthrough-Storage: ok\r\n"
                          "Content-Length: 4099276460824344800\r\n\r\n{}"});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "reading the answer to GET /v2/: body limit exceeded");
}

TEST_F(TlsCacheProbeTest, BodyIsNeverRead) {
  // The server closes after 2 of the 4096 bytes it announced: reading the body would fail with a
  // partial message. The verdict comes from the header alone.
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 200,
                   .storage = {},
                   .silent = false,
                   .raw = "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n{}"});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint(), 2s);
  EXPECT_TRUE(result.ok) << result.detail;
  EXPECT_LT(result.took, 1s);
}

TEST_F(TlsCacheProbeTest, FailsOnACertificateFromAnotherCa) {
  FakeCache cache(leaf(authorities_->other), {});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.detail.find("TLS handshake"), std::string::npos) << result.detail;
}

TEST_F(TlsCacheProbeTest, FailsOnACertificateForAnotherName) {
  FakeCache cache(leaf(authorities_->ours, "ghcr.io"), {});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.detail.find("TLS handshake"), std::string::npos) << result.detail;
}

TEST_F(TlsCacheProbeTest, WithoutACaAnyCertificateIsAccepted) {
  FakeCache cache(leaf(authorities_->other), {});
  TlsCacheProbe probe("quay.io", std::nullopt);
  EXPECT_FALSE(probe.verifies());
  EXPECT_TRUE(run(probe, cache.endpoint()).ok);
}

TEST_F(TlsCacheProbeTest, RefusedConnectionFailsAtOnce) {
  core::Endpoint closed;
  {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closed = core::Endpoint{asio::ip::make_address("127.0.0.1"), acceptor.local_endpoint().port()};
  }  // the port is closed again
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto began = std::chrono::steady_clock::now();
  auto result = run(probe, closed, 5s);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "connect: Connection refused");
  EXPECT_LT(std::chrono::steady_clock::now() - began, 1s);
}

TEST_F(TlsCacheProbeTest, ServerThatAcceptsButNeverAnswersFailsAtTheTimeout) {
  FakeCache cache(leaf(authorities_->ours),
                  {.status = 200, .storage = {}, .silent = true, .raw = {}});
  TlsCacheProbe probe("quay.io", authorities_->ours.certificate_pem());
  auto began = std::chrono::steady_clock::now();
  auto result = run(probe, cache.endpoint(), 200ms);
  auto took = std::chrono::steady_clock::now() - began;
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.detail, "no answer within 200ms (TLS handshake)");
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 2s);
  EXPECT_GE(result.took, 190ms);
}

TEST_F(TlsCacheProbeTest, PicksUpTheCaOnceItsSourceHasIt) {
  FakeCache ours(leaf(authorities_->ours), {});
  FakeCache other(leaf(authorities_->other), {});
  std::optional<std::string> on_disk;
  int asked = 0;
  TlsCacheProbe probe("quay.io", CaSource([&] {
                        ++asked;
                        return on_disk;
                      }));
  // No CA yet: reachability only, so even another CA's certificate passes.
  EXPECT_FALSE(probe.verifies());
  EXPECT_TRUE(run(probe, other.endpoint()).ok);
  EXPECT_EQ(asked, 2);

  on_disk = authorities_->ours.certificate_pem();
  EXPECT_TRUE(run(probe, ours.endpoint()).ok);
  EXPECT_TRUE(probe.verifies());
  auto refused = run(probe, other.endpoint());
  EXPECT_FALSE(refused.ok);
  EXPECT_NE(refused.detail.find("TLS handshake"), std::string::npos) << refused.detail;
  EXPECT_EQ(asked, 3);  // not asked again once it had the CA
}

TEST_F(TlsCacheProbeTest, ACaFoundLaterThatIsNotPemFailsTheCheckAndIsAskedForAgain) {
  FakeCache cache(leaf(authorities_->ours), {});
  std::optional<std::string> on_disk;
  TlsCacheProbe probe("quay.io", CaSource([&] { return on_disk; }));
  on_disk = "-----BEGIN CERTIFICATE-----\nhalf writ";
  auto result = run(probe, cache.endpoint());
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.detail.find("the CA certificate"), std::string::npos) << result.detail;
  on_disk = authorities_->ours.certificate_pem();
  EXPECT_TRUE(run(probe, cache.endpoint()).ok);
  EXPECT_TRUE(probe.verifies());
}

TEST_F(TlsCacheProbeTest, RejectsACaThatIsNotPem) {
  EXPECT_THROW(TlsCacheProbe("quay.io", std::string("not a certificate")), std::runtime_error);
}

}  // namespace
}  // namespace pullthrough::health
