#include "health/enrolled_clients.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace pullthrough::health {
namespace {

namespace fs = std::filesystem;

std::string system_reason() { return std::generic_category().message(errno); }

// Writes all of `data` to `fd`; false with errno set on failure.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    auto n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool is_word(std::string_view text) {
  return !text.empty() && text.size() <= 32 && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
  });
}

}  // namespace

EnrolledClients::EnrolledClients(fs::path path) : path_(std::move(path)) {}

EnrolledClients EnrolledClients::load(fs::path path, std::vector<std::string>& problems) {
  EnrolledClients set(std::move(path));
  std::error_code ec;
  if (!fs::exists(set.path_, ec)) return set;
  std::ifstream in(set.path_);
  if (!in) {
    problems.push_back(fmt::format("{}: cannot read: {}", set.path_.string(), system_reason()));
    return set;
  }
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string address, since, via, extra;
    fields >> address >> since >> via;
    auto problem = [&](std::string_view why) {
      problems.push_back(fmt::format("{}:{}: {}", set.path_.string(), number, why));
    };
    if (fields >> extra || via.empty()) {
      problem("expected \"<address> <time> <how>\"");
      continue;
    }
    auto client = core::parse_ip(address);
    auto at = core::parse_rfc3339(since);
    if (!client) {
      problem("not an IP address: " + address.substr(0, 64));
      continue;
    }
    if (!at) {
      problem("not an RFC 3339 UTC time: " + since.substr(0, 64));
      continue;
    }
    if (!is_word(via)) {
      problem("not a word: " + via.substr(0, 64));
      continue;
    }
    if (set.entries_.size() >= kMaxClients) {
      problem(fmt::format("more than {} clients: the rest is ignored", kMaxClients));
      break;
    }
    auto plain = core::unmapped(*client);
    set.entries_.insert_or_assign(plain, Entry{plain, *at, via});
  }
  return set;
}

bool EnrolledClients::save(const Entries& entries, std::string& error) const {
  std::string text =
      "# pullthrough: enrolled clients (POST /enroll, `pullthrough clients`). "
      "<address> <since> <how>\n";
  for (const auto& entry : in_order(entries)) {
    text += fmt::format("{} {} {}\n", entry.client.to_string(), core::format_rfc3339(entry.since),
                        entry.via);
  }
  auto temporary = path_;
  temporary += ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = fmt::format("cannot write {}: {}", temporary.string(), system_reason());
    return false;
  }
  bool written = write_all(fd, text) && ::fsync(fd) == 0;
  auto reason = written ? std::string() : system_reason();
  ::close(fd);
  if (!written) {
    ::unlink(temporary.c_str());
    error = fmt::format("cannot write {}: {}", temporary.string(), reason);
    return false;
  }
  if (::rename(temporary.c_str(), path_.c_str()) != 0) {
    reason = system_reason();
    ::unlink(temporary.c_str());
    error = fmt::format("cannot replace {}: {}", path_.string(), reason);
    return false;
  }
  // The rename itself must reach the disk before the change is reported done.
  auto directory = path_.has_parent_path() ? path_.parent_path() : fs::path(".");
  int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return true;
}

bool EnrolledClients::add(const core::IpAddress& client, core::SystemTime at, std::string_view via,
                          std::string& error) {
  auto plain = core::unmapped(client);
  if (entries_.count(plain) != 0) return true;
  if (entries_.size() >= kMaxClients) {
    error = fmt::format(
        "the enrolled set is full ({} clients): remove some with `pullthrough "
        "clients rm`",
        kMaxClients);
    return false;
  }
  auto next = entries_;
  next.emplace(plain, Entry{plain, at, is_word(via) ? std::string(via) : std::string("other")});
  if (!save(next, error)) return false;
  entries_ = std::move(next);
  return true;
}

bool EnrolledClients::remove(const core::IpAddress& client, bool& removed, std::string& error) {
  auto plain = core::unmapped(client);
  removed = false;
  if (entries_.count(plain) == 0) return true;
  auto next = entries_;
  next.erase(plain);
  if (!save(next, error)) return false;
  entries_ = std::move(next);
  removed = true;
  return true;
}

bool EnrolledClients::contains(const core::IpAddress& client) const {
  return entries_.count(core::unmapped(client)) != 0;
}

std::vector<EnrolledClients::Entry> EnrolledClients::in_order(const Entries& entries) {
  std::vector<Entry> out;
  out.reserve(entries.size());
  for (const auto& [address, entry] : entries) out.push_back(entry);
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return a.since != b.since ? a.since < b.since : a.client < b.client;
  });
  return out;
}

std::vector<EnrolledClients::Entry> EnrolledClients::list() const { return in_order(entries_); }

}  // namespace pullthrough::health
