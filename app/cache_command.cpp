#include "app/cache_command.hpp"

#include <array>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/admin_client.hpp"
#include "app/cache_admin.hpp"

namespace pullthrough::app {
namespace {

// A collection of a large cache takes seconds; the admin answers when it is done.
constexpr std::chrono::seconds kCollectionTimeout{600};

std::string padded(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

std::string short_digest(const std::string& digest) {
  auto colon = digest.find(':');
  return colon == std::string::npos ? digest
                                    : digest.substr(0, std::min(digest.size(), colon + 13));
}

}  // namespace

std::string human_size(std::uint64_t bytes) {
  static constexpr std::array<const char*, 5> kUnits = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double value = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < kUnits.size()) {
    value /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string format_refs(const std::string& text) {
  auto json = nlohmann::json::parse(text);
  if (json.empty()) return "no cached references\n";
  std::size_t width = 3;
  for (const auto& r : json) width = std::max(width, r.at("ref").get<std::string>().size());
  std::string out = padded("REF", width + 2) + padded("DIGEST", 22) + padded("SIZE", 11) +
                    padded("UNIQUE", 11) + padded("LAST USED", 26) + padded("PINNED", 8) + "RULE\n";
  for (const auto& r : json) {
    out += padded(r.at("ref").get<std::string>(), width + 2) +
           padded(short_digest(r.at("digest").get<std::string>()), 22) +
           padded(human_size(r.at("size").get<std::uint64_t>()), 11) +
           padded(human_size(r.at("unique_size").get<std::uint64_t>()), 11) +
           padded(r.at("last_used").get<std::string>(), 26) +
           padded(r.at("pinned").get<bool>() ? "yes" : "no", 8) +
           (r.at("rule").is_null() ? std::string("-") : r.at("rule").get<std::string>()) + "\n";
  }
  return out;
}

std::string format_usage(const std::string& text) {
  auto json = nlohmann::json::parse(text);
  auto total = json.at("total").get<std::uint64_t>();
  auto max_size = json.at("max_size").get<std::uint64_t>();
  std::string out = fmt::format("stored     {}", human_size(total));
  if (max_size > 0) {
    out += fmt::format(" of max_size {} ({:.0f}%)", human_size(max_size),
                       100.0 * static_cast<double>(total) / static_cast<double>(max_size));
  } else {
    out += " (no max_size)";
  }
  out += fmt::format("\npinned     {}\nevictable  {}\n",
                     human_size(json.at("pinned").get<std::uint64_t>()),
                     human_size(json.at("evictable").get<std::uint64_t>()));
  const auto& registries = json.at("by_registry");
  if (!registries.empty()) {
    out += "by registry (shared layers count in each):\n";
    for (const auto& [registry, bytes] : registries.items()) {
      out += fmt::format("  {} {}\n", padded(registry, 28), human_size(bytes.get<std::uint64_t>()));
    }
  }
  return out;
}

std::string format_collection(const std::string& text) {
  auto json = nlohmann::json::parse(text);
  const bool dry_run = json.at("dry_run").get<bool>();
  std::string out;
  if (json.contains("blocked")) {
    return "nothing decided: " + json.at("blocked").get<std::string>() + "\n";
  }
  for (const auto& r : json.at("references")) {
    out += fmt::format("{} {} ({}): {}\n", dry_run ? "would remove" : "removed",
                       r.at("ref").get<std::string>(), r.at("cause").get<std::string>(),
                       r.at("reason").get<std::string>());
  }
  const auto& objects = json.at("objects");
  std::size_t manifests = 0;
  for (const auto& o : objects) manifests += o.at("kind") == "manifest" ? 1 : 0;
  out += fmt::format("{} {} references, {} manifests and {} blobs: {} ({} bytes) {} in {} ms\n",
                     dry_run ? "would remove" : "removed", json.at("references").size(), manifests,
                     objects.size() - manifests,
                     human_size(json.at("bytes_freed").get<std::uint64_t>()),
                     json.at("bytes_freed").get<std::uint64_t>(), dry_run ? "to free" : "freed",
                     json.at("took_ms").get<std::int64_t>());
  if (auto busy = json.at("objects_busy").get<std::uint64_t>(); busy > 0) {
    out += fmt::format("{} objects were in use and are left for the next collection\n", busy);
  }
  if (auto shortfall = json.at("shortfall").get<std::uint64_t>(); shortfall > 0) {
    out += fmt::format("the store stays {} above its bound: the rest is pinned or kept forever\n",
                       human_size(shortfall));
  }
  if (json.contains("error")) out += "error: " + json.at("error").get<std::string>() + "\n";
  return out;
}

std::string format_pins(const std::string& text) {
  auto json = nlohmann::json::parse(text);
  if (json.empty()) return "no pins\n";
  std::string out = padded("PATTERN", 48) + padded("SINCE", 26) + padded("UNTIL", 26) + "SOURCE\n";
  for (const auto& p : json) {
    out += padded(p.at("pattern").get<std::string>(), 48) +
           padded(p.at("created_at").get<std::string>(), 26) +
           padded(p.at("expires_at").is_null() ? "-" : p.at("expires_at").get<std::string>(), 26) +
           p.at("source").get<std::string>() + "\n";
  }
  return out;
}

int cache_command(const config::Config& config, const Command& command, std::ostream& out,
                  std::ostream& err) {
  auto where = admin_target(config, command, err);
  if (!where) return 2;
  const core::Endpoint& admin = where->endpoint;
  const std::string& token = where->token;

  using Kind = Command::Kind;
  http::verb method = http::verb::get;
  std::string target;
  std::string (*format)(const std::string&) = nullptr;
  std::chrono::seconds timeout{10};
  const std::string dry_run = command.dry_run ? "dry_run=1" : "";
  switch (command.kind) {
    case Kind::cache_ls:
      target = "/cache/refs" + (command.ref.empty() ? "" : "?glob=" + percent_encode(command.ref));
      format = format_refs;
      timeout = kCollectionTimeout;
      break;
    case Kind::cache_du:
      target = "/cache/usage";
      format = format_usage;
      timeout = kCollectionTimeout;
      break;
    case Kind::cache_gc:
      method = http::verb::post;
      target = "/cache/gc" + (dry_run.empty() ? "" : "?" + dry_run);
      format = format_collection;
      timeout = kCollectionTimeout;
      break;
    case Kind::cache_rm:
      method = http::verb::post;
      target =
          "/cache/rm?ref=" + percent_encode(command.ref) + (dry_run.empty() ? "" : "&" + dry_run);
      format = format_collection;
      timeout = kCollectionTimeout;
      break;
    case Kind::cache_pin:
    case Kind::cache_unpin:
      method = command.kind == Kind::cache_pin ? http::verb::post : http::verb::delete_;
      target = "/cache/pins?ref=" + percent_encode(command.ref);
      break;
    case Kind::cache_pins:
      target = "/cache/pins";
      format = format_pins;
      break;
    default:
      err << "pullthrough: not a cache command\n";
      return 2;
  }
  auto answer = ask_admin(admin, method, target, token, timeout);
  if (!answer.response) {
    err << "pullthrough: the admin listener at " << admin.to_string() << " cannot be reached ("
        << answer.error << "): is the appliance running with this configuration?\n";
    return 1;
  }
  const auto& response = *answer.response;
  const bool json_answer = response[http::field::content_type].starts_with("application/json");
  if (response.result() != http::status::ok && !json_answer) {
    err << "pullthrough: " << response.body();
    return 1;
  }
  if (command.json || format == nullptr) {
    out << response.body();
  } else {
    try {
      out << format(response.body());
    } catch (const std::exception& e) {
      err << "pullthrough: " << admin.to_string() << " answered what this command cannot read ("
          << e.what() << ")\n";
      return 1;
    }
  }
  return response.result() == http::status::ok ? 0 : 1;
}

}  // namespace pullthrough::app
