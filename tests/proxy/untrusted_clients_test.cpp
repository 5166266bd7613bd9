// certificate_alert() on what Asio reports for real handshakes: the front door's ServerTls, on a
// Beast stream on 127.0.0.1:0 as in the front door, handshakes one connection with a client made
// to fail in one way, and the test reads the server side's error_code.
#include "proxy/untrusted_clients.hpp"

#include "core/asio.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "config/loader.hpp"
#include "tests/certs/test_support.hpp"
#include "tests/proxy/server_tls_fixture.hpp"

namespace pullthrough::proxy {
namespace {

using asio::ip::tcp;
using ClientStream = ssl::stream<tcp::socket>;

// The reason of an error in Asio's ssl category, 0 for any other error.
int ssl_reason(const error_code& ec) {
  if (ec.category() != asio::error::get_ssl_category()) return 0;
  return ERR_GET_REASON(static_cast<unsigned long>(static_cast<unsigned int>(ec.value())));
}

// The alert certificate_alert() finds, by name, or "none".
std::string alert_of(const error_code& ec) {
  auto alert = certificate_alert(ec);
  return alert ? std::string(to_string(*alert)) : "none";
}

// Reads the raw connection until the server closes it, so that the client never closes first
// with unread bytes (a reset) unless a test means it to.
void drain(tcp::socket& socket) {
  char buffer[4096];
  error_code ec;
  while (!ec) socket.read_some(asio::buffer(buffer), ec);
}

// A ClientHello for `server_name` from a client of OpenSSL's defaults, as raw bytes.
std::string client_hello(const char* server_name) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        &SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), BIO_new(BIO_s_mem()), out);
  SSL_set_tlsext_host_name(ssl.get(), server_name);
  SSL_set_connect_state(ssl.get());
  SSL_do_handshake(ssl.get());
  std::string hello(static_cast<std::size_t>(BIO_ctrl_pending(out)), '\0');
  BIO_read(out, hello.data(), static_cast<int>(hello.size()));
  return hello;
}

class UntrustedClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = *config::load_string("registries:\n  - {host: quay.io}\n", "t.yaml").config;
  }

  // Runs `client` against one server-side handshake, and returns the server's error_code.
  error_code server_handshake(const std::function<void(std::uint16_t port)>& client) {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const std::uint16_t port = acceptor.local_endpoint().port();
    error_code result = asio::error::not_connected;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
    acceptor.async_accept([&](error_code ec, tcp::socket socket) {
      if (ec) {
        result = ec;
        return;
      }
      stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(
          beast::tcp_stream(std::move(socket)), server_.tls.context());
      beast::get_lowest_layer(*stream).expires_after(std::chrono::seconds(10));
      stream->async_handshake(ssl::stream_base::server, [&](error_code handshake_error) {
        result = handshake_error;
        beast::get_lowest_layer(*stream).close();
      });
    });
    std::thread server([&] { io.run(); });
    client(port);
    server.join();
    return result;
  }

  // An OpenSSL client through Asio, as curl or any C client is: SNI `server_name`, at most
  // `max_version`, verifying the server's certificate when `setup` asks it to. Records the
  // protocol version the server chose.
  std::function<void(std::uint16_t)> tls_client(
      int max_version, const std::function<void(ssl::context&, ClientStream&)>& setup,
      const char* server_name = "quay.io") {
    return [this, max_version, setup, server_name](std::uint16_t port) {
      asio::io_context io;
      ssl::context tls(ssl::context::tls_client);
      SSL_CTX_set_max_proto_version(tls.native_handle(), max_version);
      ClientStream stream(io, tls);
      SSL_set_tlsext_host_name(stream.native_handle(), server_name);
      setup(tls, stream);
      stream.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
      error_code ec;
      stream.handshake(ssl::stream_base::client, ec);
      client_error_ = ec;
      version_ = SSL_version(stream.native_handle());
      drain(stream.next_layer());
    };
  }

  // A client whose verification fails with `error`; OpenSSL's ssl_x509err2alert picks the alert
  // it sends from that.
  std::function<void(std::uint16_t)> failing_verification(int max_version, int error) {
    return tls_client(max_version, [error](ssl::context&, ClientStream& stream) {
      stream.set_verify_mode(ssl::verify_peer);
      stream.set_verify_callback([error](bool, ssl::verify_context& context) {
        X509_STORE_CTX_set_error(context.native_handle(), error);
        return false;
      });
    });
  }

  // Raw bytes, then `finish` the TCP connection.
  static std::function<void(std::uint16_t)> raw_client(
      std::string bytes, std::function<void(tcp::socket&)> finish = drain) {
    return [bytes = std::move(bytes), finish = std::move(finish)](std::uint16_t port) {
      asio::io_context io;
      tcp::socket socket(io);
      socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
      asio::write(socket, asio::buffer(bytes));
      finish(socket);
    };
  }

  certs::testing::ScratchDir dir_;
  config::Config config_;
  testing::TestServerTls server_{config_, dir_.path()};
  error_code client_error_;
  int version_ = 0;
};

class UntrustedClientsVersionTest : public UntrustedClientsTest,
                                    public ::testing::WithParamInterface<int> {};

// OpenSSL, and so curl: X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY is unknown_ca.
TEST_P(UntrustedClientsVersionTest, ClientWithoutTheCaSendsUnknownCa) {
  auto ec = server_handshake(tls_client(GetParam(), [](ssl::context&, ClientStream& stream) {
    stream.set_verify_mode(ssl::verify_peer);
  }));
  EXPECT_EQ(version_, GetParam());
  EXPECT_TRUE(client_error_) << "the client trusted the certificate";
  EXPECT_EQ(alert_of(ec), "unknown_ca") << ec.message();
}

// As Go's crypto/tls does for an unknown authority.
TEST_P(UntrustedClientsVersionTest, ClientRejectingTheCertificateSendsBadCertificate) {
  auto ec = server_handshake(failing_verification(GetParam(), X509_V_ERR_CERT_REJECTED));
  EXPECT_EQ(version_, GetParam());
  EXPECT_EQ(alert_of(ec), "bad_certificate") << ec.message();
}

// As Java does for an unknown authority: an error ssl_x509err2alert has no entry for.
TEST_P(UntrustedClientsVersionTest, ClientWithAnUnlistedVerifyErrorSendsCertificateUnknown) {
  auto ec = server_handshake(failing_verification(GetParam(), X509_V_ERR_KEYUSAGE_NO_CERTSIGN));
  EXPECT_EQ(version_, GetParam());
  EXPECT_EQ(alert_of(ec), "certificate_unknown") << ec.message();
}

TEST_P(UntrustedClientsVersionTest, ClientTrustingTheCaCompletesTheHandshake) {
  const std::string ca = server_.ca.certificate_pem();
  auto ec = server_handshake(tls_client(GetParam(), [&ca](ssl::context& tls, ClientStream& stream) {
    tls.add_certificate_authority(asio::buffer(ca));
    stream.set_verify_mode(ssl::verify_peer);
    stream.set_verify_callback(ssl::host_name_verification("quay.io"));
  }));
  EXPECT_EQ(version_, GetParam());
  EXPECT_FALSE(client_error_) << client_error_.message();
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(alert_of(ec), "none");
}

// An alert from the client, but not about trust.
TEST_P(UntrustedClientsVersionTest, HandshakeFailureAlertFromTheClientIsNotCounted) {
  auto ec = server_handshake(failing_verification(GetParam(), X509_V_ERR_APPLICATION_VERIFICATION));
  EXPECT_EQ(ssl_reason(ec), SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE) << ec.message();
  EXPECT_EQ(alert_of(ec), "none");
}

// certificate_expired (45) sits between bad_certificate (42) and certificate_unknown (46); an
// expired certificate is the appliance's fault, not a client without its CA.
TEST_P(UntrustedClientsVersionTest, CertificateExpiredAlertIsNotCounted) {
  auto ec = server_handshake(failing_verification(GetParam(), X509_V_ERR_CERT_HAS_EXPIRED));
  EXPECT_EQ(ssl_reason(ec), SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED) << ec.message();
  EXPECT_EQ(alert_of(ec), "none");
}

// The server refuses the name with its own unrecognized_name alert.
TEST_P(UntrustedClientsVersionTest, UnknownServerNameIsNotCounted) {
  auto ec = server_handshake(tls_client(
      GetParam(),
      [](ssl::context&, ClientStream& stream) { stream.set_verify_mode(ssl::verify_peer); },
      "example.com"));
  EXPECT_TRUE(ec);
  EXPECT_EQ(ssl_reason(ec), SSL_R_CALLBACK_FAILED) << ec.message();
  EXPECT_EQ(alert_of(ec), "none");
}

INSTANTIATE_TEST_SUITE_P(Versions, UntrustedClientsVersionTest,
                         ::testing::Values(TLS1_3_VERSION, TLS1_2_VERSION),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return param_info.param == TLS1_3_VERSION ? "Tls13" : "Tls12";
                         });

TEST_F(UntrustedClientsTest, GarbageInsteadOfAClientHelloIsNotCounted) {
  auto ec = server_handshake(raw_client("GET / HTTP/1.1\r\nHost: quay.io\r\n\r\n"));
  EXPECT_TRUE(ec);
  EXPECT_EQ(alert_of(ec), "none") << ec.message();
}

// A client cannot be counted without a handshake: before a ClientHello, an alert is an
// unexpected message.
TEST_F(UntrustedClientsTest, UnknownCaAlertInsteadOfAClientHelloIsNotCounted) {
  // RFC 8446 section 5.1: an alert record, TLS 1.2 record version, fatal (2), unknown_ca (48).
  auto ec = server_handshake(raw_client(std::string("\x15\x03\x03\x00\x02\x02\x30", 7)));
  EXPECT_EQ(ssl_reason(ec), SSL_R_UNEXPECTED_MESSAGE) << ec.message();
  EXPECT_EQ(alert_of(ec), "none");
}

TEST_F(UntrustedClientsTest, ClientClosingMidHandshakeIsNotCounted) {
  auto ec = server_handshake(raw_client(client_hello("quay.io"), [](tcp::socket& socket) {
    socket.shutdown(tcp::socket::shutdown_send);
    drain(socket);
  }));
  EXPECT_EQ(ec, ssl::error::stream_truncated) << ec.message();
  EXPECT_EQ(alert_of(ec), "none");
}

TEST_F(UntrustedClientsTest, ClientResettingMidHandshakeIsNotCounted) {
  auto ec = server_handshake(raw_client(client_hello("quay.io"), [](tcp::socket& socket) {
    socket.set_option(asio::socket_base::linger(true, 0));
    socket.close();
  }));
  EXPECT_TRUE(ec);
  EXPECT_EQ(alert_of(ec), "none") << ec.message();
}

// The server sends protocol_version: TLS 1.2 is its least.
TEST_F(UntrustedClientsTest, ClientOfferingOnlyTls11IsNotCounted) {
  auto ec = server_handshake(tls_client(TLS1_1_VERSION, [](ssl::context&, ClientStream& stream) {
    SSL_set_security_level(stream.native_handle(), 0);
    SSL_set_min_proto_version(stream.native_handle(), TLS1_VERSION);
  }));
  EXPECT_EQ(ssl_reason(ec), SSL_R_UNSUPPORTED_PROTOCOL) << ec.message();
  EXPECT_EQ(alert_of(ec), "none");
}

// The server sends handshake_failure: its leaves are ECDSA, the client offers RSA suites only.
TEST_F(UntrustedClientsTest, ClientWithoutASharedCipherIsNotCounted) {
  auto ec = server_handshake(tls_client(TLS1_2_VERSION, [](ssl::context&, ClientStream& stream) {
    SSL_set_cipher_list(stream.native_handle(), "ECDHE-RSA-AES128-GCM-SHA256");
  }));
  EXPECT_EQ(ssl_reason(ec), SSL_R_NO_SHARED_CIPHER) << ec.message();
  EXPECT_EQ(alert_of(ec), "none");
}

// The same reason number from another library, or the same value in another category, is not
// an alert.
TEST(CertificateAlertTest, OnlyAlertReasonsOfTheSslLibraryInAsiosSslCategoryCount) {
  const auto packed = [](int library) {
    return static_cast<int>(ERR_PACK(library, 0, SSL_R_TLSV1_ALERT_UNKNOWN_CA));
  };
  EXPECT_EQ(alert_of(error_code(packed(ERR_LIB_SSL), asio::error::get_ssl_category())),
            "unknown_ca");
  EXPECT_EQ(alert_of(error_code(packed(ERR_LIB_X509), asio::error::get_ssl_category())), "none");
  EXPECT_EQ(alert_of(error_code(packed(ERR_LIB_SSL), boost::system::system_category())), "none");
  EXPECT_EQ(alert_of(error_code(SSL_R_TLSV1_ALERT_UNKNOWN_CA, asio::error::get_ssl_category())),
            "none");
  EXPECT_EQ(alert_of(beast::error::timeout), "none");
  EXPECT_EQ(alert_of(asio::error::connection_reset), "none");
  EXPECT_EQ(alert_of(error_code()), "none");
}

TEST(CertificateAlertTest, NamesRoundTrip) {
  for (auto alert : {CertificateAlert::bad_certificate, CertificateAlert::certificate_unknown,
                     CertificateAlert::unknown_ca}) {
    EXPECT_EQ(parse_certificate_alert(to_string(alert)), alert) << to_string(alert);
  }
  EXPECT_EQ(to_string(CertificateAlert::bad_certificate), "bad_certificate");
  EXPECT_EQ(to_string(CertificateAlert::certificate_unknown), "certificate_unknown");
  EXPECT_EQ(to_string(CertificateAlert::unknown_ca), "unknown_ca");
  EXPECT_EQ(parse_certificate_alert("unknown-ca"), std::nullopt);
  EXPECT_EQ(parse_certificate_alert("UNKNOWN_CA"), std::nullopt);
  EXPECT_EQ(parse_certificate_alert("certificate_expired"), std::nullopt);
  EXPECT_EQ(parse_certificate_alert(""), std::nullopt);
}

}  // namespace
}  // namespace pullthrough::proxy
