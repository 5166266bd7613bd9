#include "certs/leaf_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_support.hpp"

namespace pullthrough::certs {
namespace {

using std::chrono::hours;
using testing::fixed_now;
using testing::ScratchDir;
using testing::verify_server_certificate;

class LeafStoreTest : public ::testing::Test {
 protected:
  ScratchDir dir_;
  CertificateAuthority ca_ =
      CertificateAuthority::load_or_create(dir_.path() / "ca", "box", fixed_now());
  std::filesystem::path leaves_ = dir_.path() / "ca" / "leaves";
};

std::string serial(const std::shared_ptr<const KeyedCertificate>& leaf) {
  return describe(*leaf->cert).serial_hex;
}

TEST_F(LeafStoreTest, IssuesOnFirstUseAndCachesInMemory) {
  LeafStore store(ca_, leaves_);
  auto first = store.get("quay.io", fixed_now());
  auto again = store.get("quay.io", fixed_now() + hours(1));
  EXPECT_EQ(first, again);
  EXPECT_EQ(verify_server_certificate(ca_.certificate(), *first->cert, "quay.io", fixed_now()), "");
  EXPECT_NE(serial(store.get("ghcr.io", fixed_now())), serial(first));
}

TEST_F(LeafStoreTest, SavedLeafSurvivesARestart) {
  std::string before;
  {
    LeafStore store(ca_, leaves_);
    before = serial(store.get("quay.io", fixed_now()));
  }
  struct stat st {};
  ASSERT_EQ(::stat((leaves_ / "quay.io.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  LeafStore restarted(ca_, leaves_);
  EXPECT_EQ(serial(restarted.get("quay.io", fixed_now() + hours(24))), before);
}

TEST_F(LeafStoreTest, RenewedOnlyWithinTheRenewalWindow) {
  LeafPolicy policy;  // 89 days valid, renewed with 30 days left
  LeafStore store(ca_, leaves_, policy);
  auto leaf = store.get("quay.io", fixed_now());
  auto not_after = describe(*leaf->cert).not_after;
  auto just_outside = not_after - policy.renew_before - hours(1);
  auto just_inside = not_after - policy.renew_before + hours(1);
  EXPECT_EQ(serial(store.get("quay.io", just_outside)), serial(leaf));
  auto renewed = store.get("quay.io", just_inside);
  EXPECT_NE(serial(renewed), serial(leaf));
  EXPECT_GT(describe(*renewed->cert).not_after, not_after);
  // The renewal is saved: a restart inside the window does not issue a third one.
  LeafStore restarted(ca_, leaves_, policy);
  EXPECT_EQ(serial(restarted.get("quay.io", just_inside)), serial(renewed));
}

TEST_F(LeafStoreTest, RenewalThresholdIsExact) {
  LeafStore store(ca_, leaves_);
  CertificateInfo info;
  info.not_after = fixed_now() + hours(24 * 30);
  EXPECT_FALSE(store.needs_renewal(info, fixed_now()));
  EXPECT_TRUE(store.needs_renewal(info, fixed_now() + std::chrono::seconds(1)));
}

TEST_F(LeafStoreTest, ValidityIsUnderNinetyDays) {
  LeafStore store(ca_, leaves_);
  auto info = describe(*store.get("registry.k8s.io", fixed_now())->cert);
  EXPECT_LE(info.not_after - info.not_before, hours(24 * 90));
  EXPECT_LE(info.not_before, fixed_now());
}

TEST_F(LeafStoreTest, LeafFromAnotherCaIsReplaced) {
  ScratchDir other_dir;
  auto other = CertificateAuthority::load_or_create(other_dir.path() / "ca", "x", fixed_now());
  std::string foreign;
  {
    LeafStore store(other, leaves_);
    foreign = serial(store.get("quay.io", fixed_now()));
  }
  LeafStore store(ca_, leaves_);
  auto leaf = store.get("quay.io", fixed_now());
  EXPECT_NE(serial(leaf), foreign);
  EXPECT_TRUE(ca_.signed_by_us(*leaf->cert));
}

TEST_F(LeafStoreTest, CorruptFileIsReplaced) {
  std::filesystem::create_directories(leaves_);
  testing::write_text(leaves_ / "quay.io.pem", "garbage");
  LeafStore store(ca_, leaves_);
  auto leaf = store.get("quay.io", fixed_now());
  EXPECT_EQ(verify_server_certificate(ca_.certificate(), *leaf->cert, "quay.io", fixed_now()), "");
}

TEST_F(LeafStoreTest, SavedListsLeavesByName) {
  LeafStore store(ca_, leaves_);
  store.get("quay.io", fixed_now());
  store.get("ghcr.io", fixed_now());
  auto saved = store.saved();
  ASSERT_EQ(saved.size(), 2U);
  EXPECT_EQ(saved[0].dns_names, std::vector<std::string>{"ghcr.io"});
  EXPECT_EQ(saved[1].dns_names, std::vector<std::string>{"quay.io"});
}

}  // namespace
}  // namespace pullthrough::certs
