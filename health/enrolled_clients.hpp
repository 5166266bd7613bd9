// The machines that enrolled (ran the installer, whose last step is POST /enroll, or were added
// with `pullthrough clients add`): with `dns.intercept.clients: [enrolled]` the only ones
// intercepted. Kept in a text file under state_dir so that the set survives restarts: one client
// per line, "<address> <enrolled at, RFC 3339> <how>", rewritten whole (to a temporary file,
// synced, then renamed over the old one) on every change, so a crash leaves the old set or the
// new one, never half of one. Not thread-safe: its owner locks (health/client_scope.hpp).
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/net.hpp"
#include "core/units.hpp"

namespace pullthrough::health {

class EnrolledClients {
 public:
  struct Entry {
    core::IpAddress client;
    core::SystemTime since;
    std::string via;  // "install.sh", "admin", "proxy": one word, for `clients ls`
  };

  // A set of at most this many clients: /enroll is rate-limited, and a LAN is smaller.
  static constexpr std::size_t kMaxClients = 65536;

  // An empty set kept in `path`; nothing is read.
  explicit EnrolledClients(std::filesystem::path path);

  // Reads `path`. A missing file is an empty set. A line that does not parse is skipped, with
  // "<path>:<line>: <why>" in `problems`; an unreadable file is one problem and an empty set.
  static EnrolledClients load(std::filesystem::path path, std::vector<std::string>& problems);

  // Adds the client (unmapped) and writes the file. False, with `error` naming the file and the
  // system's reason, when the file cannot be written (the set is then unchanged) or the set is
  // full. Adding a client already there changes nothing and writes nothing.
  bool add(const core::IpAddress& client, core::SystemTime at, std::string_view via,
           std::string& error);
  // Removes the client and writes the file; `removed` says whether it was there.
  bool remove(const core::IpAddress& client, bool& removed, std::string& error);

  bool contains(const core::IpAddress& client) const;
  // In the order they enrolled.
  std::vector<Entry> list() const;
  std::size_t size() const { return entries_.size(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  using Entries = std::unordered_map<core::IpAddress, Entry, core::IpAddressHash>;
  // By enrollment time, then address: the order of the file and of list().
  static std::vector<Entry> in_order(const Entries& entries);
  bool save(const Entries& entries, std::string& error) const;

  std::filesystem::path path_;
  Entries entries_;
};

}  // namespace pullthrough::health
