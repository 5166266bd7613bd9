#include "proxy/local_blob_store.hpp"

#include <utility>

#include <array>
#include <cerrno>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/units.hpp"
#include "proxy/digester.hpp"
#include "proxy/route.hpp"

namespace pullthrough::proxy {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

class FileReader final : public BlobReader {
 public:
  FileReader(Fd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  std::size_t read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    for (;;) {
      ssize_t n = ::pread(fd_.get(), out.data(), out.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) throw_errno("reading " + path_);
    }
  }

 private:
  Fd fd_;
  std::string path_;
};

// A file read in order from `from` to `to`.
class FileStream final : public BlobStream {
 public:
  FileStream(std::unique_ptr<BlobReader> reader, std::uint64_t from, std::uint64_t to)
      : reader_(std::move(reader)), at_(from), to_(to) {}

  asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) override {
    if (at_ >= to_) co_return BodyRead{};
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), to_ - at_));
    std::size_t got = 0;
    try {
      got = reader_->read(at_, out.first(want));
    } catch (const std::system_error& e) {
      co_return BodyRead{
          0, boost::system::error_code(e.code().value(), boost::system::generic_category())};
    }
    // Shorter than the index says: the file was truncated under us.
    if (got == 0) co_return BodyRead{0, make_error_code(boost::system::errc::io_error)};
    at_ += got;
    co_return BodyRead{got, {}};
  }

 private:
  std::unique_ptr<BlobReader> reader_;
  std::uint64_t at_;
  std::uint64_t to_;
};

void fsync_directory(const std::string& path) {
  Fd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0 || ::fsync(dir.get()) != 0) throw_errno("syncing directory " + path);
}

class FileWriter final : public BlobWriter {
 public:
  FileWriter(Fd fd, std::string temp_path, std::string final_path, std::string digest,
             std::optional<std::uint64_t> expected_size)
      : fd_(std::move(fd)),
        temp_path_(std::move(temp_path)),
        final_path_(std::move(final_path)),
        digest_(std::move(digest)),
        expected_size_(expected_size),
        digester_(digest_algorithm(digest_)) {}

  ~FileWriter() override {
    if (!committed_) ::unlink(temp_path_.c_str());
  }

  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  void write(std::span<const std::uint8_t> bytes) override {
    digester_.update(bytes);
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("writing " + temp_path_);
      }
      bytes = bytes.subspan(static_cast<std::size_t>(n));
      written_ += static_cast<std::uint64_t>(n);
    }
  }

  std::uint64_t written() const override { return written_; }

  std::unique_ptr<BlobReader> reader() override {
    Fd copy(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
    if (copy.get() < 0) throw_errno("reading " + temp_path_);
    return std::make_unique<FileReader>(std::move(copy), temp_path_);
  }

  CommitResult commit() override {
    CommitResult result;
    if (committed_ || done_) {
      result.error = "committed twice";
      return result;
    }
    done_ = true;
    result.actual_digest = digester_.finish();
    if (expected_size_ && written_ != *expected_size_) {
      result.status = CommitStatus::size_mismatch;
      result.error =
          "expected " + std::to_string(*expected_size_) + " bytes, got " + std::to_string(written_);
      return result;  // the destructor deletes the temp file
    }
    if (result.actual_digest != digest_) {
      result.status = CommitStatus::digest_mismatch;
      result.error = "content hashes to " + result.actual_digest;
      return result;
    }
    try {
      if (::fsync(fd_.get()) != 0) throw_errno("syncing " + temp_path_);
      std::string directory = fs::path(final_path_).parent_path().string();
      std::error_code ec;
      fs::create_directories(directory, ec);
      if (ec) throw std::system_error(ec, "creating " + directory);
      // Another writer may have stored the same verified bytes first: replacing them is harmless.
      if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
        throw_errno("storing " + final_path_);
      }
      committed_ = true;
      fsync_directory(directory);
    } catch (const std::system_error& e) {
      result.status = CommitStatus::io_error;
      result.error = e.what();
      return result;
    }
    result.status = CommitStatus::stored;
    return result;
  }

 private:
  Fd fd_;
  std::string temp_path_;
  std::string final_path_;
  std::string digest_;
  std::optional<std::uint64_t> expected_size_;
  Digester digester_;
  std::uint64_t written_ = 0;
  bool committed_ = false;  // renamed into place: nothing to delete
  bool done_ = false;
};

}  // namespace

LocalBlobStore::LocalBlobStore(std::string root)
    : root_(std::move(root)), temp_dir_(root_ + "/tmp") {
  // Parents as an operator would make them (storage.path may point into a fresh mount); the
  // store's own directories private.
  if (auto parent = fs::path(root_).parent_path(); !parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) throw std::system_error(ec, "creating " + parent.string());
  }
  for (const auto& dir : {root_, root_ + "/blobs", temp_dir_}) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("creating " + dir);
  }
  // Whatever is in tmp was being fetched when the process died: never verified, never served.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(temp_dir_, ec)) {
    if (fs::remove_all(entry.path(), ec) > 0) ++leftovers_removed_;
  }
  if (ec) throw std::system_error(ec, "cleaning " + temp_dir_);
  std::random_device random;
  next_temp_ = (std::uint64_t{random()} << 32) | random();
}

std::string LocalBlobStore::path_for(std::string_view digest) const {
  // The route grammar already refused anything else; this keeps the store safe on its own.
  if (check_digest(digest) != DigestStatus::ok) {
    throw std::invalid_argument("not a supported digest");
  }
  auto colon = digest.find(':');
  std::string_view algorithm = digest.substr(0, colon);
  std::string_view hex = digest.substr(colon + 1);
  std::string path = root_;
  path += "/blobs/";
  path += algorithm;
  path += '/';
  path += hex.substr(0, 2);
  path += '/';
  path += hex;
  return path;
}

std::optional<std::uint64_t> LocalBlobStore::size(std::string_view digest) {
  struct stat st {};
  if (::stat(path_for(digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

std::unique_ptr<BlobReader> LocalBlobStore::open(std::string_view digest) {
  std::string path = path_for(digest);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return nullptr;
    throw_errno("opening " + path);
  }
  return std::make_unique<FileReader>(std::move(fd), std::move(path));
}

asio::awaitable<std::unique_ptr<BlobStream>> LocalBlobStore::read(std::string digest,
                                                                  std::uint64_t from,
                                                                  std::uint64_t to,
                                                                  std::string& error) {
  std::unique_ptr<BlobReader> reader;
  try {
    reader = open(digest);
  } catch (const std::system_error& e) {
    error = e.what();
  }
  if (!reader) co_return nullptr;
  co_return std::make_unique<FileStream>(std::move(reader), from, to);
}

asio::awaitable<std::optional<std::string>> LocalBlobStore::read_all(std::string digest,
                                                                     std::uint64_t size) {
  std::unique_ptr<BlobReader> reader;
  try {
    reader = open(digest);
  } catch (const std::system_error&) {
  }
  if (!reader) co_return std::nullopt;
  co_return read_whole(*reader, size);
}

std::unique_ptr<BlobWriter> LocalBlobStore::create(std::string_view digest,
                                                   std::optional<std::uint64_t> expected_size) {
  std::string final_path = path_for(digest);
  std::string temp_path = temp_dir_ + "/" + std::to_string(next_temp_++) + ".part";
  Fd fd(::open(temp_path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (fd.get() < 0) throw_errno("creating " + temp_path);
  return std::make_unique<FileWriter>(std::move(fd), std::move(temp_path), std::move(final_path),
                                      std::string(digest), expected_size);
}

bool LocalBlobStore::remove(std::string_view digest) {
  return ::unlink(path_for(digest).c_str()) == 0;
}

StoreHealth LocalBlobStore::check_health(std::uint64_t min_free) {
  StoreHealth health;
  auto failed = [&health](StoreHealth::Problem problem, std::string reason) {
    health.problem = problem;
    health.reason = std::move(reason);
    return health;
  };
  struct statvfs vfs {};
  if (::statvfs(root_.c_str(), &vfs) != 0) {
    return failed(StoreHealth::Problem::unwritable,
                  fmt::format("cannot read the file system of {}: {}", root_,
                              std::generic_category().message(errno)));
  }
  health.free_bytes = std::uint64_t{vfs.f_bavail} * vfs.f_frsize;
  health.total_bytes = std::uint64_t{vfs.f_blocks} * vfs.f_frsize;

  std::string probe = temp_dir_ + "/" + std::to_string(next_temp_++) + ".health";
  std::string error;
  {
    Fd fd(::open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
    if (fd.get() < 0) {
      error = "creating";
    } else {
      static const std::array<char, 4096> kPage{};
      ssize_t n = 0;
      do {
        n = ::write(fd.get(), kPage.data(), kPage.size());
      } while (n < 0 && errno == EINTR);
      if (n != static_cast<ssize_t>(kPage.size())) {
        error = "writing";
        if (n >= 0) errno = ENOSPC;  // a short write: the file system is full
      }
    }
  }
  if (!error.empty()) {
    int code = errno;
    ::unlink(probe.c_str());
    bool full = code == ENOSPC || code == EDQUOT;
    return failed(full ? StoreHealth::Problem::full : StoreHealth::Problem::unwritable,
                  fmt::format("{} a file in {} failed: {}", error, temp_dir_,
                              std::generic_category().message(code)));
  }
  if (::unlink(probe.c_str()) != 0) {
    return failed(
        StoreHealth::Problem::unwritable,
        fmt::format("removing {} failed: {}", probe, std::generic_category().message(errno)));
  }
  if (*health.free_bytes < min_free) {
    return failed(
        StoreHealth::Problem::full,
        fmt::format("{} free on the file system of {}, below storage.min_free {}",
                    core::format_size(*health.free_bytes), root_, core::format_size(min_free)));
  }
  return health;
}

}  // namespace pullthrough::proxy
