// ServerTls without sockets: a client SSL and a server SSL from ServerTls's context, joined by an
// OpenSSL BIO pair, handshake in memory.
#include "proxy/server_tls.hpp"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tests/certs/test_support.hpp"

namespace pullthrough::proxy {
namespace {

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

struct Handshake {
  bool ok = false;
  int client_alert = 0;  // the alert the client received, 0 when none
  std::string server_name;
  std::string alpn;
  std::string certificate_name;  // the first DNS name of the server's certificate
};

class ServerTlsTest : public ::testing::Test {
 protected:
  Handshake handshake(const std::string& sni, int max_version = TLS1_3_VERSION) {
    std::unique_ptr<SSL_CTX, SslCtxFree> client_ctx(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_max_proto_version(client_ctx.get(), max_version);
    // Low enough that the client itself offers old protocols: the refusal must be the server's.
    SSL_CTX_set_security_level(client_ctx.get(), 0);
    SSL_CTX_set_min_proto_version(client_ctx.get(), TLS1_VERSION);
    static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(client_ctx.get(), kAlpn, sizeof kAlpn);
    SslPtr client(SSL_new(client_ctx.get()));
    SslPtr server(SSL_new(tls_.context().native_handle()));
    BIO* client_bio = nullptr;
    BIO* server_bio = nullptr;
    BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
    SSL_set_bio(client.get(), client_bio, client_bio);
    SSL_set_bio(server.get(), server_bio, server_bio);
    if (!sni.empty()) SSL_set_tlsext_host_name(client.get(), sni.c_str());
    SSL_set_connect_state(client.get());
    SSL_set_accept_state(server.get());
    SSL_set_info_callback(client.get(), [](const SSL* ssl, int where, int value) {
      if ((where & SSL_CB_READ_ALERT) != 0) {
        *static_cast<int*>(SSL_get_app_data(ssl)) = value & 0xff;
      }
    });
    Handshake out;
    SSL_set_app_data(client.get(), &out.client_alert);
    auto failed = [](SSL* ssl, int rc) {
      int e = SSL_get_error(ssl, rc);
      return rc != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
    };
    // Until the client is done or has failed: a server that fails sends its alert first, and the
    // client's next step reads it.
    bool server_failed = false;
    for (int round = 0; round < 20; ++round) {
      int c = SSL_do_handshake(client.get());
      if (failed(client.get(), c)) break;
      int s = server_failed ? -1 : SSL_do_handshake(server.get());
      if (!server_failed && failed(server.get(), s)) server_failed = true;
      if (c == 1 && s == 1) {
        out.ok = true;
        break;
      }
    }
    if (!out.ok) return out;
    out.server_name = server_name_of(server.get());
    const unsigned char* alpn = nullptr;
    unsigned int alpn_length = 0;
    SSL_get0_alpn_selected(client.get(), &alpn, &alpn_length);
    out.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_length);
    X509* peer = SSL_get1_peer_certificate(client.get());
    if (peer != nullptr) {
      auto* names = static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
      if (names != nullptr && sk_GENERAL_NAME_num(names) > 0) {
        const GENERAL_NAME* first = sk_GENERAL_NAME_value(names, 0);
        if (first->type == GEN_DNS) {
          out.certificate_name.assign(
              reinterpret_cast<const char*>(ASN1_STRING_get0_data(first->d.dNSName)),
              static_cast<std::size_t>(ASN1_STRING_length(first->d.dNSName)));
        }
      }
      GENERAL_NAMES_free(names);
      X509_free(peer);
    }
    return out;
  }

  certs::testing::ScratchDir dir_;
  certs::CertificateAuthority ca_ = certs::CertificateAuthority::load_or_create(
      dir_.path() / "ca", "box", std::chrono::system_clock::now());
  certs::LeafStore leaves_{ca_, dir_.path() / "ca" / "leaves"};
  std::vector<std::string> asked_;
  ServerTls tls_{leaves_, [this](std::string_view name) {
                   asked_.emplace_back(name);
                   return name == "quay.io" || name == "registry-1.docker.io";
                 }};
};

TEST_F(ServerTlsTest, AnInterceptedNameGetsItsCertificateAndHttp11) {
  auto done = handshake("Quay.IO");
  ASSERT_TRUE(done.ok);
  EXPECT_EQ(done.server_name, "quay.io");
  EXPECT_EQ(done.certificate_name, "quay.io");
  EXPECT_EQ(done.alpn, "http/1.1");
  EXPECT_EQ(asked_, std::vector<std::string>{"quay.io"});  // asked in lower case
  EXPECT_EQ(tls_.counters().certificates_served.value(), 1U);
}

TEST_F(ServerTlsTest, AnyOtherNameIsRefusedWithUnrecognizedName) {
  auto done = handshake("example.com");
  EXPECT_FALSE(done.ok);
  EXPECT_EQ(done.client_alert, SSL_AD_UNRECOGNIZED_NAME);
  EXPECT_EQ(tls_.counters().names_refused.value(), 1U);
  EXPECT_EQ(tls_.counters().certificates_served.value(), 0U);
}

TEST_F(ServerTlsTest, NoServerNameIsRefused) {
  auto done = handshake("");
  EXPECT_FALSE(done.ok);
  EXPECT_NE(done.client_alert, 0);
  EXPECT_EQ(tls_.counters().no_name_refused.value(), 1U);
  EXPECT_TRUE(asked_.empty());
}

TEST_F(ServerTlsTest, TlsOlderThan12IsRefused) {
  EXPECT_FALSE(handshake("quay.io", TLS1_1_VERSION).ok);
  EXPECT_TRUE(handshake("quay.io", TLS1_2_VERSION).ok);
}

}  // namespace
}  // namespace pullthrough::proxy
