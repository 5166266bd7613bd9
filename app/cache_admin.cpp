#include "app/cache_admin.hpp"

#include <charconv>
#include <chrono>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/units.hpp"

namespace pullthrough::app {
namespace {

using Json = nlohmann::ordered_json;

std::string time_of(proxy::UnixSeconds at) {
  return core::format_rfc3339(core::SystemTime(std::chrono::seconds(at)));
}

core::HttpResponse json_response(const core::HttpRequest& request, http::status status,
                                 std::string text) {
  core::HttpResponse response{status, request.version()};
  response.set(http::field::content_type, "application/json");
  response.set(http::field::cache_control, "no-store");
  response.body() = std::move(text);
  return response;
}

core::HttpResponse json_response(const core::HttpRequest& request, http::status status,
                                 const Json& body) {
  return json_response(request, status, body.dump(2) + "\n");
}

core::HttpResponse text_response(const core::HttpRequest& request, http::status status,
                                 std::string body) {
  core::HttpResponse response{status, request.version()};
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  response.set(http::field::cache_control, "no-store");
  response.body() = std::move(body);
  return response;
}

core::HttpResponse not_allowed(const core::HttpRequest& request, std::string_view allow) {
  auto response = text_response(request, http::status::method_not_allowed,
                                "allowed: " + std::string(allow) + "\n");
  response.set(http::field::allow, allow);
  return response;
}

// The outcome as JSON text, one reference or object per line, written directly: a collection
// may name a million objects, whose document tree would take several times the text's memory.
std::string outcome_text(const proxy::CollectionOutcome& outcome) {
  const auto& plan = outcome.plan;
  std::string out;
  out.reserve(512 + (plan.references.size() + plan.objects.size()) * 224);
  auto text = [&out](std::string_view value) { out += Json(value).dump(); };
  auto number = [&out](auto value) { out += std::to_string(value); };
  out += "{\n  \"dry_run\": ";
  out += outcome.dry_run ? "true" : "false";
  out += ",\n  \"took_ms\": ";
  number(outcome.took.count());
  out += ",\n  \"stored_bytes\": ";
  number(plan.stored_bytes);
  out += ",\n  \"bytes_freed\": ";
  number(outcome.dry_run ? plan.bytes_freed : outcome.applied.bytes_freed);
  out += ",\n  \"objects_busy\": ";
  number(outcome.applied.objects_busy);
  out += ",\n  \"shortfall\": ";
  number(plan.shortfall);
  out += ",\n  \"references\": [";
  const char* separator = "\n    ";
  for (const auto& r : plan.references) {
    if (r.implied) continue;  // a link that goes with its reference
    out += separator;
    out += "{\"ref\": ";
    text(r.ref());
    out += ", \"digest\": ";
    text(r.digest);
    out += ", \"cause\": ";
    text(proxy::to_string(r.cause));
    out += ", \"reason\": ";
    text(r.reason);
    out += "}";
    separator = ",\n    ";
  }
  out += "\n  ],\n  \"objects\": [";
  separator = "\n    ";
  for (const auto& o : plan.objects) {
    out += separator;
    out += "{\"digest\": ";
    text(o.digest);
    out += ", \"size\": ";
    number(o.size);
    out +=
        o.manifest ? ", \"kind\": \"manifest\", \"cause\": " : ", \"kind\": \"blob\", \"cause\": ";
    text(proxy::to_string(o.cause));
    out += ", \"reason\": ";
    text(o.reason);
    out += "}";
    separator = ",\n    ";
  }
  out += "\n  ]";
  if (!plan.blocked.empty()) {
    out += ",\n  \"blocked\": ";
    text(plan.blocked);
  }
  if (!outcome.error.empty()) {
    out += ",\n  \"error\": ";
    text(outcome.error);
  }
  out += "\n}\n";
  return out;
}

// The answer to a collection or a removal, formatted off the network threads.
asio::awaitable<core::HttpResponse> outcome_response(proxy::Retention& retention,
                                                     const core::HttpRequest& request,
                                                     const proxy::CollectionOutcome& outcome) {
  auto format = [&outcome] { return outcome_text(outcome); };
  std::string text = co_await retention.format(std::move(format));
  co_return json_response(
      request, outcome.error.empty() ? http::status::ok : http::status::internal_server_error,
      std::move(text));
}

Json pin_json(const proxy::PinRecord& pin) {
  return Json{{"pattern", pin.pattern},
              {"created_at", time_of(pin.created_at)},
              {"expires_at", pin.expires_at == 0 ? Json(nullptr) : Json(time_of(pin.expires_at))},
              {"source", pin.source}};
}

bool yes(const std::optional<std::string>& value) {
  return value && (*value == "1" || *value == "true");
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto end = query.find('&');
    auto pair = query.substr(0, end);
    query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
    auto equals = pair.find('=');
    if (pair.substr(0, equals) != name) continue;
    std::string_view raw =
        equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
    std::string value;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '%') {
        value += raw[i];
        continue;
      }
      if (i + 2 >= raw.size()) return std::nullopt;
      int high = hex_value(raw[i + 1]);
      int low = hex_value(raw[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      value += static_cast<char>(high * 16 + low);
      i += 2;
    }
    return value;
  }
  return std::nullopt;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

namespace {

Json prefetch_json(const proxy::PrefetchStatus& status) {
  Json refs = Json::array();
  for (const auto& ref : status.refs) {
    Json blobs = Json::array();
    for (const auto& blob : ref.blobs) {
      Json b{{"digest", blob.digest},
             {"size", blob.size},
             {"fetched", blob.fetched},
             {"state", blob.state}};
      if (!blob.error.empty()) b["error"] = blob.error;
      blobs.push_back(std::move(b));
    }
    Json r{{"ref", ref.ref},
           {"state", ref.state},
           {"digest", ref.digest},
           {"platforms", ref.platforms},
           {"blobs", std::move(blobs)}};
    if (!ref.error.empty()) r["error"] = ref.error;
    refs.push_back(std::move(r));
  }
  return Json{{"id", status.id}, {"done", status.done}, {"refs", std::move(refs)}};
}

core::HttpResponse serve_prefetch(proxy::Prefetcher* prefetcher, const core::HttpRequest& request,
                                  std::string_view path, std::string_view query) {
  if (prefetcher == nullptr) {
    return text_response(request, http::status::not_found, "this cache runs no prefetcher\n");
  }
  const auto method = request.method();
  if (path == "/cache/prefetch") {
    if (method != http::verb::post) return not_allowed(request, "POST");
    auto list = query_value(query, "refs");
    if (!list || list->empty()) {
      return text_response(request, http::status::bad_request,
                           "POST /cache/prefetch?refs=REF[,REF...]: no reference\n");
    }
    std::vector<std::string> refs;
    std::size_t start = 0;
    for (;;) {
      auto comma = list->find(',', start);
      std::string ref = list->substr(start, comma == std::string::npos ? comma : comma - start);
      if (!ref.empty()) refs.push_back(std::move(ref));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    std::vector<proxy::PlatformFilter> platforms;
    const std::string list_of_platforms = query_value(query, "platform").value_or("all");
    start = 0;
    for (;;) {
      auto comma = list_of_platforms.find(',', start);
      std::string error;
      auto platform = proxy::PlatformFilter::parse(
          std::string_view(list_of_platforms)
              .substr(start, comma == std::string::npos ? comma : comma - start),
          error);
      if (!platform) return text_response(request, http::status::bad_request, error + "\n");
      platforms.push_back(std::move(*platform));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    auto id = prefetcher->start(std::move(refs), std::move(platforms));
    return json_response(request, http::status::accepted, Json{{"id", id}});
  }
  if (method != http::verb::get && method != http::verb::head) {
    return not_allowed(request, "GET, HEAD");
  }
  auto text = path.substr(std::string_view("/cache/prefetch/").size());
  std::uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  auto status = ec == std::errc() && end == text.data() + text.size()
                    ? prefetcher->status(id)
                    : std::optional<proxy::PrefetchStatus>();
  if (!status) {
    return text_response(request, http::status::not_found,
                         "no prefetch " + std::string(text) + " (the last " +
                             std::to_string(proxy::Prefetcher::kMaxJobs) + " are kept)\n");
  }
  return json_response(request, http::status::ok, prefetch_json(*status));
}

}  // namespace

asio::awaitable<core::HttpResponse> serve_cache(proxy::Retention& retention,
                                                proxy::Prefetcher* prefetcher,
                                                const core::HttpRequest& request,
                                                std::string_view path, std::string_view query) {
  const auto method = request.method();
  const bool read = method == http::verb::get || method == http::verb::head;
  std::string refusal;
  try {
    if (path == "/cache/prefetch" || path.starts_with("/cache/prefetch/")) {
      co_return serve_prefetch(prefetcher, request, path, query);
    }
    if (path == "/cache/refs") {
      if (!read) co_return not_allowed(request, "GET, HEAD");
      // Arguments are named first: g++ 12 mishandles temporaries in a co_await expression.
      std::string glob = query_value(query, "glob").value_or("");
      auto refs = co_await retention.references(glob);
      auto format = [&refs] {
        Json out = Json::array();
        for (const auto& r : refs) {
          out.push_back(Json{{"ref", r.ref},
                             {"digest", r.digest},
                             {"size", r.size},
                             {"unique_size", r.unique_size},
                             {"last_used", time_of(r.last_used)},
                             {"pinned", r.pinned},
                             {"rule", r.rule.empty() ? Json(nullptr) : Json(r.rule)}});
        }
        return out.dump(2) + "\n";
      };
      std::string text = co_await retention.format(std::move(format));
      co_return json_response(request, http::status::ok, std::move(text));
    }
    if (path == "/cache/usage") {
      if (!read) co_return not_allowed(request, "GET, HEAD");
      auto usage = co_await retention.usage();
      Json registries = Json::object();
      for (const auto& [registry, bytes] : usage.by_registry) registries[registry] = bytes;
      const auto& settings = retention.settings();
      co_return json_response(request, http::status::ok,
                              Json{{"total", usage.total},
                                   {"max_size", settings.max_size},
                                   {"low_watermark", settings.low_watermark},
                                   {"pinned", usage.pinned},
                                   {"evictable", usage.evictable},
                                   {"by_registry", std::move(registries)}});
    }
    if (path == "/cache/gc") {
      if (method != http::verb::post) co_return not_allowed(request, "POST");
      const bool dry_run = yes(query_value(query, "dry_run"));
      auto outcome = co_await retention.collect(dry_run);
      co_return co_await outcome_response(retention, request, outcome);
    }
    if (path == "/cache/rm") {
      if (method != http::verb::post) co_return not_allowed(request, "POST");
      auto ref = query_value(query, "ref");
      if (!ref || ref->empty()) {
        co_return text_response(request, http::status::bad_request,
                                "POST /cache/rm?ref=REF: REF is missing\n");
      }
      const bool dry_run = yes(query_value(query, "dry_run"));
      std::string pattern = *ref;
      auto outcome = co_await retention.remove(pattern, dry_run);
      if (outcome.plan.references.empty() && outcome.plan.blocked.empty() &&
          outcome.error.empty()) {
        co_return text_response(request, http::status::not_found,
                                "no cached reference matches " + *ref + "\n");
      }
      co_return co_await outcome_response(retention, request, outcome);
    }
    if (path == "/cache/pins") {
      if (read) {
        Json out = Json::array();
        auto pins = co_await retention.pins();
        for (const auto& pin : pins) out.push_back(pin_json(pin));
        co_return json_response(request, http::status::ok, out);
      }
      auto ref = query_value(query, "ref");
      if (!ref || ref->empty()) {
        co_return text_response(request, http::status::bad_request,
                                "/cache/pins?ref=REF: REF is missing\n");
      }
      if (method == http::verb::post) {
        std::string pattern = *ref;
        std::string source = "cli";
        bool added = co_await retention.pin(pattern, 0, source);
        co_return text_response(request, http::status::ok,
                                (added ? "pinned " : "was pinned already: ") + *ref + "\n");
      }
      if (method == http::verb::delete_) {
        std::string pattern = *ref;
        bool removed = co_await retention.unpin(pattern);
        co_return text_response(request, removed ? http::status::ok : http::status::not_found,
                                (removed ? "unpinned " : "not pinned: ") + *ref + "\n");
      }
      co_return not_allowed(request, "GET, HEAD, POST, DELETE");
    }
  } catch (const std::invalid_argument& e) {
    refusal = e.what();
  }
  if (!refusal.empty()) {
    co_return text_response(request, http::status::bad_request, refusal + "\n");
  }
  co_return text_response(request, http::status::not_found,
                          "not found: /cache/refs, /cache/usage, /cache/gc, /cache/rm, "
                          "/cache/pins, /cache/prefetch\n");
}

}  // namespace pullthrough::app
