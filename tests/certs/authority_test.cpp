#include "certs/authority.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_support.hpp"

namespace pullthrough::certs {
namespace {

using testing::fixed_now;
using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::verify_server_certificate;
using testing::write_text;

unsigned mode_of(const std::filesystem::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string ca_error(const std::function<void()>& action) {
  try {
    action();
  } catch (const CaError& e) {
    return e.what();
  }
  return "no error";
}

TEST(CertificateAuthorityTest, CreatedOnceAndReused) {
  ScratchDir dir;
  auto first = CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  EXPECT_TRUE(first.generated());
  auto second = CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  EXPECT_FALSE(second.generated());
  EXPECT_EQ(describe(first.certificate()).sha256_fingerprint,
            describe(second.certificate()).sha256_fingerprint);
  EXPECT_EQ(first.certificate_pem(), second.certificate_pem());
}

TEST(CertificateAuthorityTest, KeyIsPrivateAndDirectoryClosed) {
  ScratchDir dir;
  ::umask(0022);
  CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  EXPECT_EQ(mode_of(dir.path() / "ca"), 0700U);
  EXPECT_EQ(mode_of(dir.path() / "ca" / "ca.key"), 0600U);
  EXPECT_EQ(mode_of(dir.path() / "ca" / "ca.crt"), 0644U);
}

TEST(CertificateAuthorityTest, LooseKeyModeIsTightenedOnLoad) {
  ScratchDir dir;
  CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  ::chmod((dir.path() / "ca" / "ca.key").c_str(), 0644);
  CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  EXPECT_EQ(mode_of(dir.path() / "ca" / "ca.key"), 0600U);
}

TEST(CertificateAuthorityTest, GeneratedCaIsP256TenYearsNamingTheHost) {
  ScratchDir dir;
  auto ca = CertificateAuthority::load_or_create(dir.path() / "ca", "nas.lan", fixed_now());
  auto info = describe(ca.certificate());
  EXPECT_TRUE(info.is_ca);
  EXPECT_THAT(info.subject, HasSubstr("CN=pullthrough CA on nas.lan"));
  EXPECT_EQ(info.subject, info.issuer);
  EXPECT_EQ(info.not_after - fixed_now(), CertificateAuthority::kValidity);
  EVP_PKEY* key = X509_get0_pubkey(&ca.certificate());
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  char group[64] = {};
  size_t length = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key, group, sizeof group, &length), 1);
  EXPECT_STREQ(group, "prime256v1");
}

TEST(CertificateAuthorityTest, CertificateWithoutKeyIsAnErrorNotANewCa) {
  ScratchDir dir;
  auto ca = CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  std::filesystem::remove(dir.path() / "ca" / "ca.key");
  auto message = ca_error(
      [&] { CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now()); });
  EXPECT_THAT(message, HasSubstr("ca.key does not"));
  EXPECT_THAT(message, HasSubstr("every client must then trust again"));
}

TEST(CertificateAuthorityTest, LeafVerifiesAndCarriesExactlyTheRequestedName) {
  ScratchDir dir;
  auto ca = CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  auto leaf = ca.issue("quay.io", fixed_now(), std::chrono::hours(24 * 89));
  EXPECT_EQ(verify_server_certificate(ca.certificate(), *leaf.cert, "quay.io", fixed_now()), "");
  auto info = describe(*leaf.cert);
  EXPECT_EQ(info.dns_names, std::vector<std::string>{"quay.io"});
  EXPECT_FALSE(info.is_ca);
  EXPECT_LE(info.not_after - info.not_before, std::chrono::hours(24 * 90));
  EXPECT_EQ(X509_check_private_key(leaf.cert.get(), leaf.key.get()), 1);
  EXPECT_TRUE(ca.signed_by_us(*leaf.cert));
  // serverAuth only.
  EXPECT_NE(X509_get_extended_key_usage(leaf.cert.get()) & XKU_SSL_SERVER, 0U);
  EXPECT_EQ(X509_get_extended_key_usage(leaf.cert.get()) & XKU_SSL_CLIENT, 0U);
}

TEST(CertificateAuthorityTest, LeafDoesNotVerifyForAnotherName) {
  ScratchDir dir;
  auto ca = CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  auto leaf = ca.issue("quay.io", fixed_now(), std::chrono::hours(24));
  EXPECT_NE(verify_server_certificate(ca.certificate(), *leaf.cert, "ghcr.io", fixed_now()), "");
  EXPECT_NE(verify_server_certificate(ca.certificate(), *leaf.cert, "evil.quay.io", fixed_now()),
            "");
}

TEST(CertificateAuthorityTest, RefusesNamesThatAreNotPlainDnsNames) {
  ScratchDir dir;
  auto ca = CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  for (const char* name : {"", "*.quay.io", "quay.io,DNS:evil.com", "a/b", "..", "Quay.io", ".x"}) {
    EXPECT_THAT(ca_error([&] { ca.issue(name, fixed_now(), std::chrono::hours(1)); }),
                HasSubstr("refusing to issue"))
        << name;
  }
}

TEST(CertificateAuthorityTest, OperatorCaIsAccepted) {
  ScratchDir dir;
  auto generated = CertificateAuthority::load_or_create(dir.path() / "own", "box", fixed_now());
  auto ca = CertificateAuthority::load_files((dir.path() / "own" / "ca.crt").string(),
                                             (dir.path() / "own" / "ca.key").string(), fixed_now());
  EXPECT_FALSE(ca.generated());
  auto leaf = ca.issue("ghcr.io", fixed_now(), std::chrono::hours(24));
  EXPECT_EQ(verify_server_certificate(generated.certificate(), *leaf.cert, "ghcr.io", fixed_now()),
            "");
}

TEST(CertificateAuthorityTest, OperatorCaWithMismatchedKeyIsRejected) {
  ScratchDir dir;
  CertificateAuthority::load_or_create(dir.path() / "a", "box", fixed_now());
  CertificateAuthority::load_or_create(dir.path() / "b", "box", fixed_now());
  auto message = ca_error([&] {
    CertificateAuthority::load_files((dir.path() / "a" / "ca.crt").string(),
                                     (dir.path() / "b" / "ca.key").string(), fixed_now());
  });
  EXPECT_THAT(message, HasSubstr("b/ca.key is not the private key of the certificate in"));
}

TEST(CertificateAuthorityTest, OperatorCertificateThatIsNotACaIsRejected) {
  ScratchDir dir;
  auto ca = CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  auto leaf = ca.issue("quay.io", fixed_now(), std::chrono::hours(24 * 30));
  write_text(dir.path() / "leaf.crt", core::to_pem(*leaf.cert));
  write_text(dir.path() / "leaf.key", core::to_pem(*leaf.key));
  auto message = ca_error([&] {
    CertificateAuthority::load_files((dir.path() / "leaf.crt").string(),
                                     (dir.path() / "leaf.key").string(), fixed_now());
  });
  EXPECT_THAT(message, HasSubstr("leaf.crt is not a CA certificate"));
}

TEST(CertificateAuthorityTest, ExpiredOperatorCaIsRejected) {
  ScratchDir dir;
  CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  auto later = fixed_now() + CertificateAuthority::kValidity + std::chrono::hours(1);
  auto message = ca_error([&] {
    CertificateAuthority::load_files((dir.path() / "ca" / "ca.crt").string(),
                                     (dir.path() / "ca" / "ca.key").string(), later);
  });
  EXPECT_THAT(message, HasSubstr("expired on"));
}

TEST(CertificateAuthorityTest, UnreadableOrGarbageFilesAreNamed) {
  ScratchDir dir;
  write_text(dir.path() / "junk.crt", "not a certificate\n");
  write_text(dir.path() / "junk.key", "not a key\n");
  EXPECT_THAT(ca_error([&] {
                CertificateAuthority::load_files((dir.path() / "missing.crt").string(),
                                                 (dir.path() / "junk.key").string(), fixed_now());
              }),
              HasSubstr("cannot read"));
  EXPECT_THAT(ca_error([&] {
                CertificateAuthority::load_files((dir.path() / "junk.crt").string(),
                                                 (dir.path() / "junk.key").string(), fixed_now());
              }),
              HasSubstr("junk.crt holds no PEM certificate"));
}

TEST(DescribeTest, FingerprintMatchesOpenSslFormat) {
  ScratchDir dir;
  auto ca = CertificateAuthority::load_or_create(dir.path() / "ca", "box", fixed_now());
  auto fingerprint = describe(ca.certificate()).sha256_fingerprint;
  EXPECT_EQ(fingerprint.size(), 32U * 3 - 1);
  EXPECT_EQ(fingerprint.find_first_not_of("0123456789ABCDEF:"), std::string::npos);
}

}  // namespace
}  // namespace pullthrough::certs
