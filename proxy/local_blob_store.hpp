// The BlobStore on a local file system. Blobs live at <root>/blobs/<algorithm>/<2 hex>/<hex>;
// they are written under <root>/tmp, hashed as they arrive, and renamed into place only once the
// digest matches, after an fsync of the file and then of its directory.
#pragma once

#include <atomic>
#include <string>

#include "proxy/blob_store.hpp"

namespace pullthrough::proxy {

class LocalBlobStore final : public BlobStore {
 public:
  // Creates the directories (mode 0700) and deletes the temp files a crash left behind. Throws
  // std::system_error naming the directory when it cannot.
  explicit LocalBlobStore(std::string root);

  std::optional<std::uint64_t> size(std::string_view digest) override;
  // Reads the file in place, on the calling thread (it is in the page cache when it is hot).
  boost::asio::awaitable<std::unique_ptr<BlobStream>> read(std::string digest, std::uint64_t from,
                                                           std::uint64_t to,
                                                           std::string& error) override;
  boost::asio::awaitable<std::optional<std::string>> read_all(std::string digest,
                                                              std::uint64_t size) override;
  // The stored blob's file; nullptr when absent.
  std::unique_ptr<BlobReader> open(std::string_view digest);
  std::unique_ptr<BlobWriter> create(std::string_view digest,
                                     std::optional<std::uint64_t> expected_size) override;
  bool remove(std::string_view digest) override;
  // Free space is what an unprivileged writer may use (statvfs f_bavail): root's reserve does
  // not count. The probe is a 4 KiB file in tmp, written without fsync: a read-only remount, a
  // permission change or a full file system fails the write itself.
  StoreHealth check_health(std::uint64_t min_free) override;

  // How many temp files the constructor deleted.
  std::size_t leftovers_removed() const { return leftovers_removed_; }
  const std::string& root() const { return root_; }

 private:
  std::string path_for(std::string_view digest) const;

  std::string root_;
  std::string temp_dir_;
  std::size_t leftovers_removed_ = 0;
  std::atomic<std::uint64_t> next_temp_{0};
};

}  // namespace pullthrough::proxy
