// `pullthrough prefetch`: starts a prefetch on a running cache (app/cache_admin.hpp) and follows
// it: on a terminal a live display of each layer's bytes, rate and ETA and a total; otherwise a
// line per layer as it completes and a summary.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>

#include "app/cli.hpp"
#include "config/config.hpp"

namespace pullthrough::app {

int prefetch_command(const config::Config& config, const Command& command, std::ostream& out,
                     std::ostream& err);

// The platform of this machine as an image index names it ("linux/amd64", "linux/arm64").
std::string host_platform();

// Renders successive progress answers (the admin's JSON). `terminal`: the whole display each
// time, to be drawn over the previous one; otherwise only what completed since the last call.
class PrefetchDisplay {
 public:
  explicit PrefetchDisplay(bool terminal) : terminal_(terminal) {}
  // `seconds`: when this answer arrived, for rates. Throws what nlohmann::json throws for a body
  // that is not a progress answer.
  std::string update(const std::string& json, double seconds);
  // The closing lines: totals, and which references failed.
  std::string summary(const std::string& json) const;
  std::size_t lines_drawn() const { return lines_drawn_; }

 private:
  struct Seen {
    std::uint64_t fetched = 0;
    double at = 0;
    double rate = 0;  // bytes per second, smoothed
    bool reported = false;
  };
  bool terminal_;
  std::size_t lines_drawn_ = 0;
  double started_ = -1;
  std::map<std::string, Seen> blobs_;  // by ref + digest
  std::map<std::string, bool> refs_reported_;
};

}  // namespace pullthrough::app
