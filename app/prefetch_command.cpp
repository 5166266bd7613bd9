#include "app/prefetch_command.hpp"

#include <chrono>
#include <fstream>
#include <ostream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/utsname.h>
#include <unistd.h>

#include "app/admin_client.hpp"
#include "app/cache_admin.hpp"
#include "app/cache_command.hpp"

namespace pullthrough::app {
namespace {

constexpr auto kPollEvery = std::chrono::milliseconds(250);

std::string short_digest(const std::string& digest) { return digest.substr(0, 19); }

std::string eta(std::uint64_t left, double rate) {
  if (rate <= 0) return "--";
  auto seconds = static_cast<std::uint64_t>(static_cast<double>(left) / rate);
  if (seconds >= 3600) return fmt::format("{}h{:02}m", seconds / 3600, seconds % 3600 / 60);
  if (seconds >= 60) return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
  return fmt::format("{}s", seconds);
}

bool final_state(const std::string& state) {
  return state == "cached" || state == "fetched" || state == "failed";
}

}  // namespace

std::string host_platform() {
  struct utsname name {};
  std::string machine = ::uname(&name) == 0 ? name.machine : "x86_64";
  if (machine == "x86_64") return "linux/amd64";
  if (machine == "aarch64" || machine == "arm64") return "linux/arm64";
  if (machine == "armv7l") return "linux/arm/v7";
  if (machine == "i686" || machine == "i386") return "linux/386";
  return "linux/" + machine;
}

std::string PrefetchDisplay::update(const std::string& text, double seconds) {
  auto json = nlohmann::json::parse(text);
  if (started_ < 0) started_ = seconds;
  std::string out;
  std::uint64_t total = 0;
  std::uint64_t fetched = 0;
  double rate = 0;
  std::size_t lines = 0;
  for (const auto& ref : json.at("refs")) {
    const auto name = ref.at("ref").get<std::string>();
    const auto state = ref.at("state").get<std::string>();
    if (terminal_) {
      std::string digest = ref.at("digest").get<std::string>();
      out += fmt::format("{} {}{}\n", name, state,
                         digest.empty() ? "" : " (" + short_digest(digest) + ")");
      ++lines;
    }
    for (const auto& blob : ref.at("blobs")) {
      const auto digest = blob.at("digest").get<std::string>();
      const auto size = blob.at("size").get<std::uint64_t>();
      const auto got = blob.at("fetched").get<std::uint64_t>();
      const auto blob_state = blob.at("state").get<std::string>();
      Seen& seen = blobs_[name + " " + digest];
      if (seconds > seen.at && seen.at > 0 && got >= seen.fetched) {
        double now_rate = static_cast<double>(got - seen.fetched) / (seconds - seen.at);
        seen.rate = seen.rate == 0 ? now_rate : 0.7 * seen.rate + 0.3 * now_rate;
      }
      seen.fetched = got;
      seen.at = seconds;
      total += size;
      fetched += std::min(got, size);
      if (blob_state == "fetching") rate += seen.rate;
      if (terminal_) {
        if (blob_state == "fetching") {
          out += fmt::format("  {}  {:>10} / {:<10}  {:>10}/s  ETA {}\n", short_digest(digest),
                             human_size(got), human_size(size),
                             human_size(static_cast<std::uint64_t>(seen.rate)),
                             eta(size > got ? size - got : 0, seen.rate));
        } else {
          out +=
              fmt::format("  {}  {:>10}  {}\n", short_digest(digest), human_size(size),
                          blob_state == "failed" ? "failed: " + blob.value("error", std::string())
                                                 : blob_state);
        }
        ++lines;
      } else if (final_state(blob_state) && !seen.reported) {
        seen.reported = true;
        out +=
            fmt::format("{} {} {} {}{}\n", name, short_digest(digest), human_size(size), blob_state,
                        blob_state == "failed" ? ": " + blob.value("error", std::string()) : "");
      }
    }
    if (!terminal_ && (state == "done" || state == "failed") && !refs_reported_[name]) {
      refs_reported_[name] = true;
      out += state == "done"
                 ? fmt::format("{} done ({})\n", name,
                               short_digest(ref.at("digest").get<std::string>()))
                 : fmt::format("{} failed: {}\n", name, ref.value("error", std::string()));
    }
  }
  if (terminal_) {
    out += fmt::format("total {} / {}  {}/s  ETA {}  ({:.0f} s)\n", human_size(fetched),
                       human_size(total), human_size(static_cast<std::uint64_t>(rate)),
                       eta(total > fetched ? total - fetched : 0, rate), seconds - started_);
    ++lines;
    // Drawn over the previous display: up to its first line, each line cleared first.
    std::string redraw;
    if (lines_drawn_ > 0) redraw += fmt::format("\x1b[{}A", lines_drawn_);
    std::string cleared;
    std::size_t at = 0;
    while (at < out.size()) {
      auto end = out.find('\n', at);
      cleared += "\x1b[2K" + out.substr(at, end - at + 1);
      at = end + 1;
    }
    // Lines the previous display had beyond this one are cleared too.
    for (std::size_t i = lines; i < lines_drawn_; ++i) cleared += "\x1b[2K\n";
    lines_drawn_ = std::max(lines, lines_drawn_);
    return redraw + cleared;
  }
  return out;
}

std::string PrefetchDisplay::summary(const std::string& text) const {
  auto json = nlohmann::json::parse(text);
  std::size_t done = 0;
  std::size_t failed = 0;
  std::uint64_t fetched = 0;
  std::uint64_t cached = 0;
  std::string failures;
  for (const auto& ref : json.at("refs")) {
    if (ref.at("state") == "done") {
      ++done;
    } else {
      ++failed;
      failures += fmt::format("  {}: {}\n", ref.at("ref").get<std::string>(),
                              ref.value("error", std::string("not finished")));
    }
    for (const auto& blob : ref.at("blobs")) {
      if (blob.at("state") == "fetched") fetched += blob.at("size").get<std::uint64_t>();
      if (blob.at("state") == "cached") cached += blob.at("size").get<std::uint64_t>();
    }
  }
  std::string out = fmt::format("{} of {} references prefetched: {} fetched, {} already cached\n",
                                done, done + failed, human_size(fetched), human_size(cached));
  if (failed > 0) out += "failed:\n" + failures;
  return out;
}

int prefetch_command(const config::Config& config, const Command& command, std::ostream& out,
                     std::ostream& err) {
  std::vector<std::string> refs = command.refs;
  if (!command.ref_file.empty()) {
    std::ifstream in(command.ref_file);
    if (!in) {
      err << "pullthrough: cannot read " << command.ref_file << "\n";
      return 2;
    }
    for (std::string line; std::getline(in, line);) {
      if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
      auto first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos) continue;
      auto last = line.find_last_not_of(" \t\r");
      refs.push_back(line.substr(first, last - first + 1));
    }
  }
  if (refs.empty()) {
    err << "pullthrough: no reference to prefetch\n";
    return 2;
  }
  auto target = admin_target(config, command, err);
  if (!target) return 2;
  const core::Endpoint& admin = target->endpoint;
  const std::string& token = target->token;
  std::string joined;
  for (const auto& ref : refs) joined += (joined.empty() ? "" : ",") + ref;
  const std::string platform = command.all_platforms       ? "all"
                               : !command.platform.empty() ? command.platform
                                                           : host_platform();
  auto started = ask_admin(
      admin, http::verb::post,
      "/cache/prefetch?refs=" + percent_encode(joined) + "&platform=" + percent_encode(platform),
      token);
  if (!started.response) {
    err << "pullthrough: the admin listener at " << admin.to_string() << " cannot be reached ("
        << started.error << "): is the appliance running with this configuration?\n";
    return 1;
  }
  if (started.response->result() != http::status::accepted) {
    err << "pullthrough: " << started.response->body();
    return 1;
  }
  std::uint64_t id = 0;
  try {
    id = nlohmann::json::parse(started.response->body()).at("id").get<std::uint64_t>();
  } catch (const std::exception& e) {
    err << "pullthrough: an answer this command cannot read (" << e.what() << ")\n";
    return 1;
  }

  PrefetchDisplay display(::isatty(STDOUT_FILENO) == 1);
  const auto t0 = std::chrono::steady_clock::now();
  std::string last;
  for (;;) {
    auto answer = ask_admin(admin, http::verb::get, "/cache/prefetch/" + std::to_string(id));
    if (!answer.response || answer.response->result() != http::status::ok) {
      err << "pullthrough: lost the prefetch: "
          << (answer.response ? answer.response->body() : answer.error + "\n");
      return 1;
    }
    last = answer.response->body();
    bool done = false;
    try {
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      out << display.update(last, seconds) << std::flush;
      done = nlohmann::json::parse(last).at("done").get<bool>();
    } catch (const std::exception& e) {
      err << "pullthrough: an answer this command cannot read (" << e.what() << ")\n";
      return 1;
    }
    if (done) break;
    std::this_thread::sleep_for(kPollEvery);
  }
  auto summary = display.summary(last);
  out << summary;
  bool failed = summary.find("\nfailed:\n") != std::string::npos;
  if (failed) err << "pullthrough: some references were not prefetched (see above)\n";
  return failed ? 1 : 0;
}

}  // namespace pullthrough::app
