#include "certs/authority.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pullthrough::certs {
namespace {

namespace fs = std::filesystem;
using std::chrono::system_clock;

constexpr auto kClockSkew = std::chrono::hours(1);

[[noreturn]] void fail(const std::string& what) {
  auto detail = core::take_openssl_errors();
  throw CaError(detail.empty() ? what : what + " (" + detail + ")");
}

SystemTime from_asn1(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return SystemTime{};
  return system_clock::from_time_t(timegm(&tm));
}

void set_asn1(ASN1_TIME* field, SystemTime when) {
  ASN1_TIME_set(field, system_clock::to_time_t(when));
}

std::string name_line(const X509_NAME* name) {
  core::BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

core::EvpPkeyPtr generate_p256_key() {
  core::EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) fail("cannot generate an EC P-256 key");
  return key;
}

void set_random_serial(X509* cert) {
  // 127 random bits: positive, unique enough that no two certificates of this CA share a serial.
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) fail("no random bytes");
  bytes[0] &= 0x7F;
  core::BignumPtr bn(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    fail("cannot set a serial number");
  }
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  core::X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    fail(std::string("cannot add extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
}

void add_name_entry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                 0) != 1) {
    fail(std::string("cannot set ") + field);
  }
}

// Only what a DNS name may hold, so a name can go into an extension's text form and a file name.
bool is_plain_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  return name.find("..") == std::string_view::npos;
}

std::string sanitized_host_name(std::string_view host_name) {
  std::string out;
  for (char c : host_name.substr(0, 48)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    out += ok ? c : '-';
  }
  return out.empty() ? "localhost" : out;
}

KeyedCertificate generate_ca(std::string_view host_name, SystemTime now) {
  KeyedCertificate ca{core::X509Ptr(X509_new()), generate_p256_key()};
  X509* cert = ca.cert.get();
  if (cert == nullptr) fail("cannot allocate a certificate");
  X509_set_version(cert, 2);  // v3
  set_random_serial(cert);
  set_asn1(X509_getm_notBefore(cert), now - kClockSkew);
  set_asn1(X509_getm_notAfter(cert), now + CertificateAuthority::kValidity);
  X509_NAME* name = X509_get_subject_name(cert);
  add_name_entry(name, "O", "pullthrough");
  add_name_entry(name, "CN", "pullthrough CA on " + sanitized_host_name(host_name));
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, ca.key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  // pathlen:0: this CA signs leaves only, never another CA.
  add_extension(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_extension(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(cert, &ctx, NID_subject_key_identifier, "hash");
  add_extension(cert, &ctx, NID_authority_key_identifier, "keyid:always");
  if (X509_sign(cert, ca.key.get(), EVP_sha256()) == 0) fail("cannot sign the CA certificate");
  return ca;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw CaError("cannot read " + path.string() + ": " + std::generic_category().message(errno));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The checks a CA certificate and key must pass before they sign anything.
void validate_ca(const KeyedCertificate& ca, const std::string& cert_name,
                 const std::string& key_name, SystemTime now) {
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    ERR_clear_error();
    throw CaError(key_name + " is not the private key of the certificate in " + cert_name);
  }
  if (X509_check_ca(ca.cert.get()) != 1) {
    throw CaError(cert_name +
                  " is not a CA certificate (it needs basicConstraints CA:TRUE and, if it has a "
                  "keyUsage, keyCertSign)");
  }
  auto info = describe(*ca.cert);
  if (now < info.not_before) {
    throw CaError(cert_name + " is not valid until " + format_utc(info.not_before));
  }
  if (now >= info.not_after) {
    throw CaError(cert_name + " expired on " + format_utc(info.not_after));
  }
}

KeyedCertificate load_pair(const fs::path& cert_path, const fs::path& key_path) {
  auto cert = core::certificate_from_pem(read_file(cert_path));
  if (!cert) throw CaError(cert_path.string() + " holds no PEM certificate");
  auto key = core::private_key_from_pem(read_file(key_path));
  if (!key) {
    throw CaError(key_path.string() + " holds no unencrypted PEM private key");
  }
  return KeyedCertificate{std::move(cert), std::move(key)};
}

}  // namespace

std::string format_utc(SystemTime when) {
  std::time_t t = system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buffer;
}

CertificateInfo describe(const X509& cert) {
  CertificateInfo info;
  X509* x = const_cast<X509*>(&cert);
  info.subject = name_line(X509_get_subject_name(x));
  info.issuer = name_line(X509_get_issuer_name(x));
  core::BignumPtr serial(ASN1_INTEGER_to_BN(X509_get_serialNumber(x), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    info.serial_hex = hex;
    OPENSSL_free(hex);
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int length = 0;
  if (X509_digest(x, EVP_sha256(), md.data(), &length) == 1) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (unsigned i = 0; i < length; ++i) {
      if (i != 0) info.sha256_fingerprint += ':';
      info.sha256_fingerprint += kHex[md[i] >> 4];
      info.sha256_fingerprint += kHex[md[i] & 0xF];
    }
  }
  info.not_before = from_asn1(X509_get0_notBefore(x));
  info.not_after = from_asn1(X509_get0_notAfter(x));
  core::GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type != GEN_DNS) continue;
      const ASN1_STRING* dns = name->d.dNSName;
      info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                  static_cast<std::size_t>(ASN1_STRING_length(dns)));
    }
  }
  info.is_ca = X509_check_ca(x) == 1;
  return info;
}

void write_file_atomically(const fs::path& path, std::string_view content, unsigned mode) {
  std::random_device random;
  fs::path temp = path;
  temp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(random());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    throw CaError("cannot create " + temp.string() + ": " + std::generic_category().message(errno));
  const char* data = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      throw CaError("cannot write " + temp.string() + ": " +
                    std::generic_category().message(saved));
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  // The umask may have narrowed the mode; set exactly what was asked for.
  bool ok = ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok || ::rename(temp.c_str(), path.c_str()) != 0) {
    if (ok) saved = errno;
    ::unlink(temp.c_str());
    throw CaError("cannot write " + path.string() + ": " + std::generic_category().message(saved));
  }
  int dir = ::open(path.parent_path().empty() ? "." : path.parent_path().c_str(),
                   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

CertificateAuthority CertificateAuthority::load_or_create(const fs::path& dir,
                                                          std::string_view host_name,
                                                          SystemTime now) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw CaError("cannot create " + dir.string() + ": " + ec.message());
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) throw CaError("cannot restrict " + dir.string() + " to mode 0700: " + ec.message());
  auto cert_path = dir / "ca.crt";
  auto key_path = dir / "ca.key";
  bool have_cert = fs::exists(cert_path);
  bool have_key = fs::exists(key_path);
  if (have_cert && have_key) {
    fs::permissions(key_path, fs::perms::owner_read | fs::perms::owner_write,
                    fs::perm_options::replace, ec);
    if (ec) throw CaError("cannot restrict " + key_path.string() + " to mode 0600");
    auto ca = load_pair(cert_path, key_path);
    validate_ca(ca, cert_path.string(), key_path.string(), now);
    return CertificateAuthority(std::move(ca), false);
  }
  if (have_cert != have_key) {
    auto present = have_cert ? cert_path : key_path;
    auto missing = have_cert ? key_path : cert_path;
    throw CaError(present.string() + " exists but " + missing.string() +
                  " does not: restore it, or remove both to create a new CA (which every client "
                  "must then trust again)");
  }
  auto ca = generate_ca(host_name, now);
  // The key first: a crash between the two writes leaves a key without a certificate, which the
  // next start reports instead of pairing a certificate with a key it cannot find.
  write_file_atomically(key_path, core::to_pem(*ca.key), 0600);
  write_file_atomically(cert_path, core::to_pem(*ca.cert), 0644);
  return CertificateAuthority(std::move(ca), true);
}

CertificateAuthority CertificateAuthority::load_files(const std::string& cert_file,
                                                      const std::string& key_file, SystemTime now) {
  auto ca = load_pair(cert_file, key_file);
  validate_ca(ca, cert_file, key_file, now);
  return CertificateAuthority(std::move(ca), false);
}

KeyedCertificate CertificateAuthority::issue(std::string_view dns_name, SystemTime now,
                                             std::chrono::seconds validity) const {
  if (!is_plain_dns_name(dns_name)) {
    throw CaError("refusing to issue a certificate for \"" + std::string(dns_name) + "\"");
  }
  KeyedCertificate leaf{core::X509Ptr(X509_new()), generate_p256_key()};
  X509* cert = leaf.cert.get();
  if (cert == nullptr) fail("cannot allocate a certificate");
  X509_set_version(cert, 2);
  set_random_serial(cert);
  auto not_before = now - kClockSkew;
  set_asn1(X509_getm_notBefore(cert), not_before);
  set_asn1(X509_getm_notAfter(cert), not_before + validity);
  add_name_entry(X509_get_subject_name(cert), "CN", std::string(dns_name));
  X509_set_issuer_name(cert, X509_get_subject_name(ca_.cert.get()));
  X509_set_pubkey(cert, leaf.key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca_.cert.get(), cert, nullptr, nullptr, 0);
  add_extension(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert, &ctx, NID_key_usage, "critical,digitalSignature");
  add_extension(cert, &ctx, NID_ext_key_usage, "serverAuth");
  add_extension(cert, &ctx, NID_subject_alt_name, "DNS:" + std::string(dns_name));
  add_extension(cert, &ctx, NID_subject_key_identifier, "hash");
  add_extension(cert, &ctx, NID_authority_key_identifier, "keyid:always");
  if (X509_sign(cert, ca_.key.get(), EVP_sha256()) == 0) fail("cannot sign a leaf certificate");
  return leaf;
}

bool CertificateAuthority::signed_by_us(const X509& cert) const {
  EVP_PKEY* ca_key = X509_get0_pubkey(ca_.cert.get());
  bool ok = X509_verify(const_cast<X509*>(&cert), ca_key) == 1;
  ERR_clear_error();
  return ok;
}

}  // namespace pullthrough::certs
