#include "config/loader.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <yaml-cpp/yaml.h>

#include "core/text.hpp"

namespace pullthrough::config {
namespace {

constexpr std::uint32_t kMaxTtlSeconds = 86400;  // a day: rewritten answers must stay short-lived

using core::ascii_lower;

// What a node is, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  std::string value = node.Scalar();
  if (value.size() > 60) value = value.substr(0, 57) + "...";
  return "\"" + value + "\"";
}

class Context {
 public:
  Context(std::string file, std::vector<ConfigError>& errors, std::vector<ConfigError>& warnings)
      : file_(std::move(file)), errors_(errors), warnings_(warnings) {}

  void error(const YAML::Mark& mark, std::string key, std::string message) {
    errors_.push_back(located(mark, std::move(key), std::move(message)));
  }
  void warning(const YAML::Mark& mark, std::string key, std::string message) {
    warnings_.push_back(located(mark, std::move(key), std::move(message)));
  }

  void expected(const YAML::Node& node, const YAML::Mark& fallback, const std::string& key,
                std::string_view what) {
    error(mark_of(node, fallback), key,
          std::string("expected ") + std::string(what) + ", got " + describe(node));
  }

  static YAML::Mark mark_of(const YAML::Node& node, const YAML::Mark& fallback) {
    if (node.IsDefined() && !node.Mark().is_null()) return node.Mark();
    return fallback;
  }

 private:
  ConfigError located(const YAML::Mark& mark, std::string key, std::string message) const {
    ConfigError e;
    e.file = file_;
    if (!mark.is_null()) {
      e.line = mark.line + 1;
      e.column = mark.column + 1;
    }
    e.key = std::move(key);
    e.message = std::move(message);
    return e;
  }

  std::string file_;
  std::vector<ConfigError>& errors_;
  std::vector<ConfigError>& warnings_;
};

// A located value: the node and the mark to blame when the node itself has none (a null value).
struct Value {
  YAML::Node node;
  YAML::Mark mark;
  std::string path;
};

// Reads one YAML mapping. Keys are taken by name; whatever is left when the reader is finished is
// an unknown key and an error, which catches typos such as "anwser_ttl".
class MapReader {
 public:
  MapReader(Context& ctx, const YAML::Node& node, const YAML::Mark& mark, std::string path)
      : ctx_(ctx), path_(std::move(path)), mark_(mark) {
    if (!node.IsDefined() || node.IsNull()) return;  // absent or empty: every default applies
    if (!node.IsMap()) {
      ctx_.expected(node, mark, path_.empty() ? "(top level)" : path_, "a mapping");
      return;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      // yaml-cpp's iterator yields a temporary pair: take copies (Node is a cheap handle).
      YAML::Node key = it->first;
      YAML::Node value = it->second;
      if (!key.IsScalar()) {
        ctx_.error(Context::mark_of(key, mark), path_, "keys must be plain names");
        continue;
      }
      std::string name = key.Scalar();
      if (entries_.count(name) != 0) {
        ctx_.error(key.Mark(), join(name), "duplicate key");
        continue;
      }
      entries_.emplace(name, Entry{value, key.Mark(), false});
      order_.push_back(name);
    }
  }

  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  ~MapReader() {
    for (const auto& name : order_) {
      const auto& entry = entries_.at(name);
      if (!entry.taken) ctx_.error(entry.key_mark, join(name), "unknown key");
    }
  }

  std::optional<Value> take(std::string_view name) {
    auto it = entries_.find(std::string(name));
    if (it == entries_.end()) return std::nullopt;
    it->second.taken = true;
    return Value{it->second.value, Context::mark_of(it->second.value, it->second.key_mark),
                 join(name)};
  }

  // Reads `name` with `parse` into `out` when the key is present and valid.
  template <typename T, typename Parse>
  void read(std::string_view name, T& out, Parse parse) {
    if (auto value = take(name)) {
      if (auto parsed = parse(ctx_, *value)) out = std::move(*parsed);
    }
  }

  // A nested mapping; absent or empty leaves its defaults.
  void nested(std::string_view name, const std::function<void(MapReader&)>& body) {
    auto value = take(name);
    MapReader child(ctx_, value ? value->node : YAML::Node(), value ? value->mark : mark_,
                    join(name));
    body(child);
  }

  bool has(std::string_view name) const { return entries_.count(std::string(name)) != 0; }
  Context& context() { return ctx_; }
  const YAML::Mark& mark() const { return mark_; }

 private:
  struct Entry {
    YAML::Node value;
    YAML::Mark key_mark;
    bool taken;
  };

  std::string join(std::string_view name) const {
    return path_.empty() ? std::string(name) : path_ + "." + std::string(name);
  }

  Context& ctx_;
  std::string path_;
  YAML::Mark mark_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;
};

// ---- scalar parsers: each reports its own error and returns nullopt on failure ----

std::optional<std::string> parse_string(Context& ctx, const Value& v) {
  if (!v.node.IsScalar()) {
    ctx.expected(v.node, v.mark, v.path, "a string");
    return std::nullopt;
  }
  return v.node.Scalar();
}

std::optional<std::string> parse_path(Context& ctx, const Value& v) {
  auto text = parse_string(ctx, v);
  if (text && text->find('\0') != std::string::npos) {
    ctx.error(v.mark, v.path, "a path cannot contain a NUL byte");
    return std::nullopt;
  }
  return text;
}

std::optional<bool> parse_bool(Context& ctx, const Value& v) {
  if (v.node.IsScalar()) {
    const std::string& text = v.node.Scalar();
    if (text == "true") return true;
    if (text == "false") return false;
  }
  ctx.expected(v.node, v.mark, v.path, "true or false");
  return std::nullopt;
}

std::optional<Duration> parse_duration_value(Context& ctx, const Value& v) {
  if (v.node.IsScalar()) {
    if (auto d = core::parse_duration(v.node.Scalar())) return d;
  }
  ctx.expected(v.node, v.mark, v.path, "a duration like \"10s\", \"500ms\", \"5m\" or \"30d\"");
  return std::nullopt;
}

// A parser of durations from `min` to `max`; one outside is an error that says `bounds`.
auto duration_within(Duration min, Duration max, std::string bounds) {
  return [min, max, bounds = std::move(bounds)](Context& ctx,
                                                const Value& v) -> std::optional<Duration> {
    auto d = parse_duration_value(ctx, v);
    if (d && (*d < min || *d > max)) {
      ctx.error(v.mark, v.path, bounds);
      return std::nullopt;
    }
    return d;
  };
}

std::optional<std::uint64_t> parse_size_value(Context& ctx, const Value& v) {
  if (v.node.IsScalar()) {
    if (auto s = core::parse_size(v.node.Scalar())) return s;
  }
  ctx.expected(v.node, v.mark, v.path, "a size like \"512MiB\", \"100GiB\" or a number of bytes");
  return std::nullopt;
}

auto parse_count(std::uint64_t min, std::uint64_t max) {
  return [min, max](Context& ctx, const Value& v) -> std::optional<std::uint64_t> {
    if (v.node.IsScalar()) {
      const std::string& text = v.node.Scalar();
      if (!text.empty() && text.size() <= 19 &&
          std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        std::uint64_t value = std::stoull(text);
        if (value >= min && value <= max) return value;
        ctx.error(v.mark, v.path,
                  "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                      ", got " + text);
        return std::nullopt;
      }
    }
    ctx.expected(v.node, v.mark, v.path, "a whole number");
    return std::nullopt;
  };
}

template <typename T>
auto narrowed(std::optional<std::uint64_t> value) -> std::optional<T> {
  if (!value) return std::nullopt;
  return static_cast<T>(*value);
}

// A list whose items are parsed one by one; fails as a whole if any item fails, after reporting
// every bad item.
template <typename T, typename ParseItem>
std::optional<std::vector<T>> parse_list(Context& ctx, const Value& v, ParseItem parse_item) {
  if (!v.node.IsSequence()) {
    ctx.expected(v.node, v.mark, v.path, "a list");
    return std::nullopt;
  }
  std::vector<T> out;
  bool ok = true;
  for (std::size_t i = 0; i < v.node.size(); ++i) {
    Value item{v.node[i], Context::mark_of(v.node[i], v.mark),
               v.path + "[" + std::to_string(i) + "]"};
    if (auto parsed = parse_item(ctx, item)) {
      out.push_back(std::move(*parsed));
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

template <typename T, typename ParseItem>
auto list_of(ParseItem parse_item) {
  return [parse_item](Context& ctx, const Value& v) { return parse_list<T>(ctx, v, parse_item); };
}

std::optional<Endpoint> parse_listen_endpoint(Context& ctx, const Value& v) {
  if (v.node.IsScalar()) {
    if (auto e = core::parse_endpoint(v.node.Scalar())) return e;
  }
  ctx.expected(v.node, v.mark, v.path, "an address with a port like \"0.0.0.0:53\" or \"[::]:53\"");
  return std::nullopt;
}

// A list of IP addresses that may also hold one keyword ("auto" or "self") standing for a set of
// addresses found at run time.
struct AddressList {
  bool keyword = false;
  std::vector<IpAddress> addresses;
};

auto parse_address_list(std::string keyword) {
  return [keyword](Context& ctx, const Value& v) -> std::optional<AddressList> {
    AddressList out;
    auto items = parse_list<std::optional<IpAddress>>(
        ctx, v, [&](Context& c, const Value& item) -> std::optional<std::optional<IpAddress>> {
          if (item.node.IsScalar() && item.node.Scalar() == keyword) {
            return std::optional<IpAddress>();
          }
          if (item.node.IsScalar()) {
            if (auto a = core::parse_ip(item.node.Scalar())) return std::optional<IpAddress>(*a);
          }
          c.expected(item.node, item.mark, item.path, "an IP address or \"" + keyword + "\"");
          return std::nullopt;
        });
    if (!items) return std::nullopt;
    if (items->empty()) {
      ctx.error(v.mark, v.path, "needs at least one entry (an IP address or \"" + keyword + "\")");
      return std::nullopt;
    }
    for (auto& item : *items) {
      if (item) {
        out.addresses.push_back(*item);
      } else {
        out.keyword = true;
      }
    }
    return out;
  };
}

// A network item of a client list: "private" or a CIDR; nothing for any other text.
std::optional<std::vector<Cidr>> networks_named(const std::string& text) {
  if (text == "private") return core::private_networks();
  if (auto cidr = Cidr::parse(text)) return std::vector<Cidr>{*cidr};
  return std::nullopt;
}

void add_networks(std::vector<Cidr>& to, const std::vector<Cidr>& networks) {
  for (const auto& cidr : networks) {
    if (std::find(to.begin(), to.end(), cidr) == to.end()) to.push_back(cidr);
  }
}

std::optional<std::vector<Cidr>> parse_allow(Context& ctx, const Value& v) {
  auto lists = parse_list<std::vector<Cidr>>(
      ctx, v, [](Context& c, const Value& item) -> std::optional<std::vector<Cidr>> {
        if (item.node.IsScalar()) {
          if (auto networks = networks_named(item.node.Scalar())) return networks;
        }
        c.expected(item.node, item.mark, item.path,
                   "\"private\" or a network like \"192.0.2.0/24\" (host bits zero)");
        return std::nullopt;
      });
  if (!lists) return std::nullopt;
  std::vector<Cidr> out;
  for (const auto& list : *lists) add_networks(out, list);
  if (out.empty()) {
    ctx.error(v.mark, v.path, "an empty allow list would refuse every client");
    return std::nullopt;
  }
  return out;
}

// dns.intercept.clients: [all], or any of `enrolled`, `private` and networks.
bool parse_intercept_clients(Context& ctx, const Value& v, InterceptConfig& out) {
  struct Item {
    enum class Kind : std::uint8_t { all, enrolled, networks } kind;
    std::vector<Cidr> networks;
  };
  auto items = parse_list<Item>(ctx, v, [](Context& c, const Value& item) -> std::optional<Item> {
    if (item.node.IsScalar()) {
      const auto& text = item.node.Scalar();
      if (text == "all") return Item{Item::Kind::all, {}};
      if (text == "enrolled") return Item{Item::Kind::enrolled, {}};
      if (auto networks = networks_named(text)) return Item{Item::Kind::networks, *networks};
    }
    c.expected(item.node, item.mark, item.path,
               "\"all\", \"enrolled\", \"private\" or a network like \"192.0.2.0/24\" (host bits "
               "zero)");
    return std::nullopt;
  });
  if (!items) return false;
  if (items->empty()) {
    ctx.error(v.mark, v.path,
              "an empty list would intercept no client: list \"enrolled\" for an opt-in rollout");
    return false;
  }
  InterceptConfig parsed = out;
  parsed.all_clients = false;
  parsed.enrolled = false;
  parsed.networks.clear();
  for (const auto& item : *items) {
    switch (item.kind) {
      case Item::Kind::all:
        parsed.all_clients = true;
        break;
      case Item::Kind::enrolled:
        parsed.enrolled = true;
        break;
      case Item::Kind::networks:
        add_networks(parsed.networks, item.networks);
        break;
    }
  }
  if (parsed.all_clients && items->size() > 1) {
    ctx.error(v.mark, v.path, "\"all\" already includes every client: list it alone");
    return false;
  }
  out = std::move(parsed);
  return true;
}

struct UpstreamList {
  bool system = false;
  std::vector<Endpoint> endpoints;
};

std::optional<UpstreamList> parse_dns_upstreams(Context& ctx, const Value& v) {
  auto items = parse_list<std::optional<Endpoint>>(
      ctx, v, [](Context& c, const Value& item) -> std::optional<std::optional<Endpoint>> {
        if (item.node.IsScalar()) {
          if (item.node.Scalar() == "system") return std::optional<Endpoint>();
          if (auto e = core::parse_endpoint(item.node.Scalar(), 53)) {
            return std::optional<Endpoint>(*e);
          }
        }
        c.expected(item.node, item.mark, item.path,
                   "\"system\", an IP address, or an address with a port like \"192.0.2.1:53\"");
        return std::nullopt;
      });
  if (!items) return std::nullopt;
  if (items->empty()) {
    ctx.error(v.mark, v.path, "needs at least one upstream resolver (or \"system\")");
    return std::nullopt;
  }
  UpstreamList out;
  for (auto& item : *items) {
    if (item) {
      out.endpoints.push_back(*item);
    } else {
      out.system = true;
    }
  }
  return out;
}

// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, each 1..63
// characters, 253 in all. A single trailing dot is tolerated and dropped.
std::optional<std::string> normalize_host_name(std::string_view text) {
  if (!text.empty() && text.back() == '.') text.remove_suffix(1);
  if (text.empty() || text.size() > 253) return std::nullopt;
  std::string out = ascii_lower(text);
  std::size_t label_start = 0;
  for (std::size_t i = 0; i <= out.size(); ++i) {
    if (i == out.size() || out[i] == '.') {
      std::size_t length = i - label_start;
      if (length == 0 || length > 63) return std::nullopt;
      if (out[label_start] == '-' || out[i - 1] == '-') return std::nullopt;
      label_start = i + 1;
      continue;
    }
    char c = out[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return std::nullopt;
  }
  return out;
}

std::optional<std::string> parse_host_name(Context& ctx, const Value& v) {
  if (v.node.IsScalar()) {
    if (auto host = normalize_host_name(v.node.Scalar())) return host;
  }
  ctx.expected(v.node, v.mark, v.path, "a DNS host name like \"quay.io\"");
  return std::nullopt;
}

std::optional<UpstreamUrl> parse_upstream_url_text(std::string_view text) {
  UpstreamUrl url;
  if (text.starts_with("https://")) {
    url.scheme = "https";
    url.port = 443;
    text.remove_prefix(8);
  } else if (text.starts_with("http://")) {
    url.scheme = "http";
    url.port = 80;
    text.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  if (!text.empty() && text.back() == '/') text.remove_suffix(1);
  // The distribution API lives at /v2/ on the host's root; paths, queries and credentials in the
  // URL are not supported.
  if (text.find_first_of("/?#@") != std::string_view::npos) return std::nullopt;
  std::string_view host = text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    auto address = core::parse_ip(host);
    if (!address || !address->is_v6()) return std::nullopt;
    url.host = address->to_string();
    text.remove_prefix(close + 1);
    if (!text.empty() && text.front() != ':') return std::nullopt;
  } else {
    auto colon = text.find(':');
    host = text.substr(0, colon);
    auto normalized = normalize_host_name(host);
    if (!normalized) return std::nullopt;
    url.host = *normalized;
    text.remove_prefix(colon == std::string_view::npos ? text.size() : colon);
  }
  if (!text.empty()) {
    auto endpoint = core::parse_endpoint("0.0.0.0" + std::string(text));
    if (!endpoint || endpoint->port == 0) return std::nullopt;
    url.port = endpoint->port;
  }
  return url;
}

std::optional<UpstreamUrl> parse_upstream_url(Context& ctx, const Value& v) {
  if (v.node.IsScalar()) {
    if (auto url = parse_upstream_url_text(v.node.Scalar())) return url;
  }
  ctx.expected(v.node, v.mark, v.path,
               "a URL like \"https://registry-1.docker.io\" or \"https://host:5000\" (no path)");
  return std::nullopt;
}

std::optional<StorageBackend> parse_storage_backend(Context& ctx, const Value& v) {
  if (v.node.IsScalar()) {
    if (v.node.Scalar() == "filesystem") return StorageBackend::filesystem;
    if (v.node.Scalar() == "s3") return StorageBackend::s3;
  }
  ctx.expected(v.node, v.mark, v.path, "filesystem or s3");
  return std::nullopt;
}

// S3's rules for bucket names that work in both addressing styles: 3 to 63 lower-case letters,
// digits, dots and hyphens, starting and ending with a letter or digit, no two dots in a row, and
// not shaped like an IPv4 address.
bool valid_bucket_name(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!alnum(c) && c != '.' && c != '-') return false;
    if (c == '.' && i > 0 && name[i - 1] == '.') return false;
  }
  return !core::parse_ip(name);
}

std::optional<std::string> parse_bucket(Context& ctx, const Value& v) {
  if (v.node.IsScalar() && valid_bucket_name(v.node.Scalar())) return v.node.Scalar();
  ctx.expected(v.node, v.mark, v.path,
               "an S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens");
  return std::nullopt;
}

std::optional<std::string> parse_region(Context& ctx, const Value& v) {
  if (v.node.IsScalar()) {
    const std::string& text = v.node.Scalar();
    if (!text.empty() && text.size() <= 64 && std::all_of(text.begin(), text.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        })) {
      return text;
    }
  }
  ctx.expected(v.node, v.mark, v.path, "a region like \"us-east-1\"");
  return std::nullopt;
}

// Keys are made of the prefix and "blobs/sha256/<hex>": printable ASCII keeps them the same in
// every tool and in the signature's encoding, and no "." or ".." segment or leading "/" lets a
// key land outside the prefix on servers that map keys to files.
std::optional<std::string> parse_key_prefix(Context& ctx, const Value& v) {
  auto text = parse_string(ctx, v);
  if (!text) return std::nullopt;
  bool printable = std::all_of(text->begin(), text->end(),
                               [](char c) { return c > ' ' && c < 0x7f && c != '\\'; });
  bool bad_segment = false;
  std::size_t start = 0;
  while (start <= text->size() && !text->empty()) {
    auto slash = text->find('/', start);
    auto segment = std::string_view(*text).substr(
        start, slash == std::string::npos ? std::string::npos : slash - start);
    // An empty segment is allowed only as what follows the final '/'.
    if (segment == "." || segment == ".." || (segment.empty() && slash != std::string::npos)) {
      bad_segment = true;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (printable && !bad_segment && text->size() <= 512) return text;
  ctx.error(v.mark, v.path,
            "a key prefix is up to 512 printable characters without spaces or backslashes, and "
            "no empty, \".\" or \"..\" segment, like \"cache/\"");
  return std::nullopt;
}

// Returns the required keys given a value, so that one given wrong is not also reported missing.
std::set<std::string> read_s3(MapReader& m, S3Config& s3) {
  Context& ctx = m.context();
  std::set<std::string> given;
  // "" leaves a value unset, as the embedded defaults show it; validate_s3() requires it.
  auto unset = [](const Value& v) { return v.node.IsScalar() && v.node.Scalar().empty(); };
  if (auto v = m.take("endpoint"); v && !unset(*v)) {
    given.insert("endpoint");
    if (v->node.IsScalar()) {
      if (auto url = parse_upstream_url_text(v->node.Scalar())) {
        s3.endpoint = *url;
      } else {
        ctx.expected(v->node, v->mark, v->path,
                     "a URL like \"https://s3.us-east-1.amazonaws.com\" or "
                     "\"http://10.0.0.5:9000\" (no path)");
      }
    } else {
      ctx.expected(v->node, v->mark, v->path, "a URL");
    }
  }
  if (auto v = m.take("region"); v && !unset(*v)) {
    given.insert("region");
    if (auto region = parse_region(ctx, *v)) s3.region = *region;
  }
  if (auto v = m.take("bucket"); v && !unset(*v)) {
    given.insert("bucket");
    if (auto bucket = parse_bucket(ctx, *v)) s3.bucket = *bucket;
  }
  m.read("prefix", s3.prefix, parse_key_prefix);
  m.read("path_style", s3.path_style, parse_bool);
  m.read("access_key_file", s3.access_key_file, parse_path);
  m.read("secret_key_file", s3.secret_key_file, parse_path);
  m.read("ca_file", s3.ca_file, parse_path);
  m.read("hot_tier", s3.hot_tier, parse_size_value);
  m.read("timeout", s3.timeout,
         duration_within(std::chrono::milliseconds(100), std::chrono::minutes(10),
                         "must be from 100ms to 10m"));
  m.read("probe_interval", s3.probe_interval,
         duration_within(std::chrono::milliseconds(100), std::chrono::hours(24),
                         "must be from 100ms to 24h"));
  m.read("max_retries", s3.max_retries, [](Context& cx, const Value& v) {
    return narrowed<std::uint32_t>(parse_count(0, 10)(cx, v));
  });
  // Secrets do not belong in a file that is read by check-config, shown in bug reports and
  // kept in version control: name the file that holds them instead.
  for (std::string_view inline_key :
       {"access_key", "secret_key", "access_key_id", "secret_access_key", "session_token"}) {
    if (auto v = m.take(inline_key)) {
      ctx.error(v->mark, v->path,
                "keys are not written in the configuration: put the key in a file readable only "
                "by the appliance, and name it in access_key_file / secret_key_file");
    }
  }
  return given;
}

// The settings a bucket cannot do without, checked once the backend is known to be s3.
void validate_s3(Context& ctx, const YAML::Mark& mark, const S3Config& s3,
                 const std::set<std::string>& given) {
  auto required = [&](const std::string& value, const char* key) {
    if (value.empty() && given.count(key) == 0) {
      ctx.error(mark, std::string("storage.s3.") + key, "is required with storage.backend: s3");
    }
  };
  required(s3.endpoint.host, "endpoint");
  required(s3.region, "region");
  required(s3.bucket, "bucket");
  required(s3.access_key_file, "access_key_file");
  required(s3.secret_key_file, "secret_key_file");
  if (!s3.path_style && !s3.endpoint.host.empty() && core::parse_ip(s3.endpoint.host)) {
    ctx.error(mark, "storage.s3.path_style",
              "virtual-hosted style (false) puts the bucket in the host name, which an endpoint "
              "given as an IP address cannot do");
  }
  if (!s3.path_style && s3.endpoint.scheme == "https" && s3.bucket.find('.') != std::string::npos) {
    ctx.error(mark, "storage.s3.path_style",
              "a bucket name with dots in virtual-hosted style over https does not match the "
              "endpoint's wildcard certificate: use path_style: true");
  }
}

std::optional<spdlog::level::level_enum> parse_log_level(Context& ctx, const Value& v) {
  static const std::map<std::string, spdlog::level::level_enum> kLevels = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off}};
  if (v.node.IsScalar()) {
    auto it = kLevels.find(v.node.Scalar());
    if (it != kLevels.end()) return it->second;
  }
  ctx.expected(v.node, v.mark, v.path, "one of trace, debug, info, warn, error, critical, off");
  return std::nullopt;
}

std::optional<core::LogFormat> parse_log_format(Context& ctx, const Value& v) {
  if (v.node.IsScalar() && v.node.Scalar() == "text") return core::LogFormat::text;
  if (v.node.IsScalar() && v.node.Scalar() == "json") return core::LogFormat::json;
  ctx.expected(v.node, v.mark, v.path, "text or json");
  return std::nullopt;
}

// ---- sections ----

void read_dns(MapReader& m, DnsConfig& dns) {
  m.read("listen", dns.listen, list_of<Endpoint>(parse_listen_endpoint));
  if (auto v = m.take("upstreams")) {
    if (auto list = parse_dns_upstreams(m.context(), *v)) {
      dns.system_upstreams = list->system;
      dns.upstreams = std::move(list->endpoints);
    }
  }
  m.read("answer_ttl", dns.answer_ttl, [](Context& ctx, const Value& v) -> std::optional<Duration> {
    auto d = parse_duration_value(ctx, v);
    if (!d) return std::nullopt;
    if (d->count() % 1000 != 0 || *d > std::chrono::seconds(kMaxTtlSeconds)) {
      ctx.error(v.mark, v.path, "a DNS TTL is whole seconds between 0s and 1d");
      return std::nullopt;
    }
    return d;
  });
  m.read("upstream_timeout", dns.upstream_timeout,
         duration_within(std::chrono::milliseconds(10), std::chrono::seconds(60),
                         "must be between 10ms and 60s"));
  m.nested("cache", [&](MapReader& c) {
    c.read("max_entries", dns.cache.max_entries, parse_count(0, 100'000'000));
    c.read("serve_stale", dns.cache.serve_stale, parse_duration_value);
  });
  m.read("allow", dns.allow, parse_allow);
  m.nested("rate_limit", [&](MapReader& r) {
    r.read("per_client_qps", dns.per_client_qps, [](Context& ctx, const Value& v) {
      return narrowed<std::uint32_t>(parse_count(0, 10'000'000)(ctx, v));
    });
  });
  if (auto v = m.take("cache_hosts")) {
    if (auto list = parse_address_list("self")(m.context(), *v)) {
      dns.self_cache_host = list->keyword;
      dns.cache_hosts = std::move(list->addresses);
    }
  }
  m.nested("intercept", [&](MapReader& i) {
    if (auto v = i.take("clients")) parse_intercept_clients(i.context(), *v, dns.intercept);
    i.read("untrusted_bypass", dns.intercept.untrusted_bypass,
           duration_within(Duration::zero(), std::chrono::hours(24 * 30),
                           "at most 30d (0 turns the learned bypass off)"));
    i.read("max_bypassed", dns.intercept.max_bypassed, [](Context& ctx, const Value& v) {
      return narrowed<std::uint32_t>(parse_count(1, 1'000'000)(ctx, v));
    });
  });
}

void read_proxy(MapReader& m, ProxyConfig& proxy) {
  m.read("listen", proxy.listen, list_of<Endpoint>(parse_listen_endpoint));
  m.read("http_listen", proxy.http_listen, list_of<Endpoint>(parse_listen_endpoint));
  m.read("allow", proxy.allow, parse_allow);
  if (auto v = m.take("handover")) {
    Context& ctx = m.context();
    bool is_auto = v->node.IsScalar() && v->node.Scalar() == "auto";
    auto d = v->node.IsScalar() ? core::parse_duration(v->node.Scalar()) : std::nullopt;
    if (is_auto) {
      proxy.handover.reset();
    } else if (!d) {
      ctx.expected(v->node, v->mark, v->path, "\"auto\" or a duration like \"15s\"");
    } else if (*d > std::chrono::minutes(10)) {
      ctx.error(v->mark, v->path, "must be at most 10m");
    } else {
      proxy.handover = *d;
    }
  }
  auto connection_timeout = duration_within(std::chrono::milliseconds(100), std::chrono::hours(1),
                                            "must be between 100ms and 1h");
  m.read("request_timeout", proxy.request_timeout, connection_timeout);
  m.read("write_timeout", proxy.write_timeout, connection_timeout);
  m.read("max_connections", proxy.max_connections, [](Context& ctx, const Value& v) {
    return narrowed<std::uint32_t>(parse_count(1, 1'000'000)(ctx, v));
  });
  m.read("max_connections_per_client", proxy.max_connections_per_client,
         [](Context& ctx, const Value& v) {
           return narrowed<std::uint32_t>(parse_count(0, 1'000'000)(ctx, v));
         });
}

std::optional<PushMode> parse_push_mode(Context& ctx, const Value& v) {
  auto text = parse_string(ctx, v);
  if (!text) return std::nullopt;
  if (*text == "passthrough") return PushMode::passthrough;
  if (*text == "deny") return PushMode::deny;
  ctx.error(v.mark, v.path, "must be passthrough or deny, not \"" + *text + "\"");
  return std::nullopt;
}

// One item of retention.rules.
std::optional<RetentionRule> parse_retention_rule(Context& ctx, const Value& v) {
  RetentionRule rule;
  MapReader m(ctx, v.node, v.mark, v.path);
  if (!v.node.IsMap()) return std::nullopt;  // MapReader reported it
  bool failed = false;
  if (auto p = m.take("match")) {
    std::string error;
    if (!p->node.IsScalar()) {
      ctx.expected(p->node, p->mark, p->path, "a pattern like \"quay.io/myorg/**\"");
      failed = true;
    } else if (auto glob = RefGlob::compile(p->node.Scalar(), error)) {
      rule.match = std::move(*glob);
    } else {
      ctx.error(p->mark, p->path, error);
      failed = true;
    }
  } else {
    ctx.error(v.mark, v.path + ".match", "every rule needs a match pattern");
    failed = true;
  }
  std::optional<Value> keep = m.take("keep");
  if (keep) {
    if (keep->node.IsScalar() && keep->node.Scalar() == "forever") {
      rule.keep_forever = true;
    } else {
      ctx.expected(keep->node, keep->mark, keep->path, "\"forever\"");
      failed = true;
    }
  }
  if (auto e = m.take("expire_unused_after")) {
    auto d = duration_within(Duration(1), Duration::max(),
                             "must be greater than zero; to keep, use keep: forever")(ctx, *e);
    failed = failed || !d;
    rule.expire_unused_after = d;
  }
  if (auto k = m.take("keep_tags")) {
    auto n = narrowed<std::uint32_t>(parse_count(1, 1'000'000)(ctx, *k));
    failed = failed || !n;
    rule.keep_tags = n;
  }
  if (rule.keep_forever && (rule.expire_unused_after || rule.keep_tags)) {
    ctx.error(keep->mark, keep->path,
              "keep: forever keeps everything the rule matches: drop expire_unused_after and "
              "keep_tags, or keep");
    failed = true;
  } else if (!keep && !failed && !rule.expire_unused_after && !rule.keep_tags) {
    ctx.error(v.mark, v.path, "a rule needs keep: forever, expire_unused_after or keep_tags");
    failed = true;
  }
  if (failed) return std::nullopt;
  return rule;
}

std::optional<RegistryConfig> parse_registry(Context& ctx, const Value& v) {
  RegistryConfig registry;
  bool failed = false;
  {
    MapReader m(ctx, v.node, v.mark, v.path);
    if (!v.node.IsMap()) return std::nullopt;  // MapReader reported it
    if (!m.has("host")) {
      ctx.error(v.mark, v.path + ".host", "every registry needs a host");
      failed = true;
    }
    std::optional<std::string> host;
    if (auto h = m.take("host")) {
      host = parse_host_name(ctx, *h);
      failed = failed || !host;
      if (host) registry.host = *host;
    }
    if (auto a = m.take("aliases")) {
      auto aliases = parse_list<std::string>(ctx, *a, parse_host_name);
      failed = failed || !aliases;
      if (aliases) registry.aliases = std::move(*aliases);
    }
    if (auto u = m.take("upstream")) {
      auto url = parse_upstream_url(ctx, *u);
      failed = failed || !url;
      if (url) registry.upstream = *url;
    } else if (host) {
      registry.upstream = UpstreamUrl{"https", *host, 443};
    }
    if (auto c = m.take("ca_file")) {
      auto file = parse_path(ctx, *c);
      failed = failed || !file;
      if (file) registry.ca_file = *file;
    }
    if (auto c = m.take("credentials")) {
      Credentials credentials;
      MapReader cm(ctx, c->node, c->mark, c->path);
      bool has_user = cm.has("username");
      bool has_password = cm.has("password_file");
      cm.read("username", credentials.username, parse_string);
      cm.read("password_file", credentials.password_file, parse_path);
      if (!c->node.IsMap() || !has_user || !has_password) {
        if (c->node.IsMap()) {
          ctx.error(c->mark, c->path, "needs both username and password_file");
        }
        failed = true;
      } else {
        registry.credentials = credentials;
      }
    }
    m.read("manifest_ttl", registry.manifest_ttl, parse_duration_value);
    m.read("push", registry.push, parse_push_mode);
    if (auto share = m.take("share_private")) {
      registry.share_private = parse_bool(ctx, *share).value_or(false);
      // Logged at start (serve logs every warning) and shown by check-config: an operator's
      // explicit choice, but one that changes who may read what.
      if (host && registry.share_private) {
        ctx.warning(share->mark, share->path,
                    "\"" + registry.host + "\"" +
                        (registry.credentials
                             ? ": cached content of repositories anonymous access cannot read is "
                               "served to every client without checking their credentials"
                             : " has no credentials, so share_private has no effect: it shares "
                               "only what the appliance's own account can read"));
      }
    }
  }
  if (failed) return std::nullopt;
  return registry;
}

void validate_registries(Context& ctx, const YAML::Node& node, const YAML::Mark& mark,
                         const std::vector<RegistryConfig>& registries) {
  if (registries.empty()) {
    ctx.error(mark, "registries", "needs at least one registry to intercept");
    return;
  }
  std::map<std::string, std::size_t> owner;
  for (std::size_t i = 0; i < registries.size(); ++i) {
    std::vector<std::string> names{registries[i].host};
    names.insert(names.end(), registries[i].aliases.begin(), registries[i].aliases.end());
    for (const auto& name : names) {
      auto [it, inserted] = owner.emplace(name, i);
      if (!inserted) {
        ctx.error(Context::mark_of(node[i], mark), "registries[" + std::to_string(i) + "]",
                  "\"" + name + "\" is already intercepted by registries[" +
                      std::to_string(it->second) + "]");
      }
    }
  }
}

}  // namespace

std::string to_string(const InterceptConfig& intercept) {
  if (intercept.all_clients) return "all";
  std::string out = intercept.enrolled ? "enrolled" : "";
  for (const auto& network : intercept.networks) {
    out += (out.empty() ? "" : ", ") + network.to_string();
  }
  return out;
}

Duration handover_or_auto(const Config& config) {
  if (config.proxy.handover) return *config.proxy.handover;
  return config.dns.answer_ttl + config.health.interval + config.health.timeout;
}

std::string UpstreamUrl::to_string() const {
  std::string out = scheme + "://";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (!((scheme == "https" && port == 443) || (scheme == "http" && port == 80))) {
    out += ":" + std::to_string(port);
  }
  return out;
}

const RegistryConfig* Config::find_registry(std::string_view name) const {
  auto wanted = ascii_lower(name);
  if (!wanted.empty() && wanted.back() == '.') wanted.pop_back();
  for (const auto& registry : registries) {
    if (registry.host == wanted) return &registry;
    for (const auto& alias : registry.aliases) {
      if (alias == wanted) return &registry;
    }
  }
  return nullptr;
}

std::optional<PlatformFilter> parse_platform(Context& ctx, const Value& v) {
  auto text = parse_string(ctx, v);
  if (!text) return std::nullopt;
  std::string error;
  auto platform = PlatformFilter::parse(*text, error);
  if (!platform) ctx.error(v.mark, v.path, error);
  return platform;
}

// host/repository[:tag] or host/repository@digest, of a configured registry (host or alias).
// The repository and tag are checked as retention globs are (lower-case path components, a
// tag's characters); the proxy checks the full grammar again when it fetches.
auto parse_prefetch_ref(const std::vector<RegistryConfig>& registries) {
  return [&registries](Context& ctx, const Value& v) -> std::optional<std::string> {
    auto text = parse_string(ctx, v);
    if (!text) return std::nullopt;
    auto bad = [&](const std::string& why) -> std::optional<std::string> {
      ctx.error(v.mark, v.path, "\"" + *text + "\": " + why);
      return std::nullopt;
    };
    auto slash = text->find('/');
    if (slash == std::string::npos || slash == 0) {
      return bad("not host/repository[:tag] or host/repository@digest");
    }
    std::string host = core::ascii_lower(std::string_view(*text).substr(0, slash));
    bool known = std::any_of(registries.begin(), registries.end(), [&](const RegistryConfig& r) {
      return r.host == host ||
             std::find(r.aliases.begin(), r.aliases.end(), host) != r.aliases.end();
    });
    if (!known) return bad("\"" + host + "\" is not one of the registries");
    std::string reference = *text;
    if (auto at = text->find('@'); at != std::string::npos) {
      std::string digest = text->substr(at + 1);
      auto hex = [](std::string_view h, std::size_t n) {
        return h.size() == n && std::all_of(h.begin(), h.end(), [](char c) {
                 return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
               });
      };
      bool ok = (digest.starts_with("sha256:") && hex(std::string_view(digest).substr(7), 64)) ||
                (digest.starts_with("sha512:") && hex(std::string_view(digest).substr(7), 128));
      if (!ok) return bad("the digest is not sha256:<64 hex> or sha512:<128 hex>");
      reference = text->substr(0, at);
    }
    std::string error;
    if (reference.find('*') != std::string::npos || !RefGlob::compile(reference, error)) {
      return bad(error.empty() ? "a reference, not a pattern" : error);
    }
    return text;
  };
}

Config defaults() {
  Config c;
  auto ep = [](const char* text) { return *core::parse_endpoint(text); };
  c.dns.listen = {ep("0.0.0.0:53"), ep("[::]:53")};
  c.dns.allow = core::private_networks();
  c.proxy.listen = {ep("0.0.0.0:443"), ep("[::]:443")};
  c.proxy.http_listen = {ep("0.0.0.0:80")};
  c.proxy.allow = core::private_networks();
  c.admin.listen = ep("127.0.0.1:9090");
  c.prefetch.platforms = {PlatformFilter{"linux", "amd64", "", false}};
  c.admin.allow = core::private_networks();
  RegistryConfig hub;
  hub.host = "registry-1.docker.io";
  hub.aliases = {"docker.io", "index.docker.io"};
  hub.upstream = UpstreamUrl{"https", "registry-1.docker.io", 443};
  c.registries.push_back(hub);
  for (const char* host :
       {"quay.io", "ghcr.io", "gcr.io", "registry.k8s.io", "public.ecr.aws", "mcr.microsoft.com"}) {
    RegistryConfig r;
    r.host = host;
    r.upstream = UpstreamUrl{"https", host, 443};
    c.registries.push_back(r);
  }
  c.storage.path = c.state_dir + "/cache";
  c.storage.spool = c.state_dir + "/spool";
  return c;
}

std::string ConfigError::to_string() const {
  std::ostringstream out;
  out << file;
  if (line > 0) out << ':' << line << ':' << column;
  out << ": ";
  if (!key.empty()) out << key << ": ";
  out << message;
  return out.str();
}

LoadResult load_string(std::string_view yaml, std::string_view file_name) {
  LoadResult result;
  Context ctx(std::string(file_name), result.errors, result.warnings);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::ParserException& e) {
    ctx.error(e.mark, "", "YAML syntax error: " + e.msg);
    return result;
  } catch (const YAML::Exception& e) {
    ctx.error(e.mark, "", std::string("cannot read YAML: ") + e.what());
    return result;
  }

  Config c = defaults();
  bool storage_path_set = false;
  YAML::Mark storage_mark;
  bool spool_set = false;
  std::set<std::string> s3_given;
  YAML::Mark root_mark;  // line 1, column 1
  {
    MapReader m(ctx, root, root_mark, "");
    m.read("state_dir", c.state_dir, [](Context& cx, const Value& v) -> std::optional<std::string> {
      auto path = parse_path(cx, v);
      if (path && path->empty()) {
        cx.error(v.mark, v.path, "must not be empty");
        return std::nullopt;
      }
      return path;
    });
    m.nested("log", [&](MapReader& l) {
      l.read("level", c.log.level, parse_log_level);
      l.read("format", c.log.format, parse_log_format);
    });
    m.nested("appliance", [&](MapReader& a) {
      if (auto v = a.take("addresses")) {
        if (auto list = parse_address_list("auto")(ctx, *v)) {
          c.appliance.auto_addresses = list->keyword;
          c.appliance.addresses = std::move(list->addresses);
        }
      }
    });
    m.nested("dns", [&](MapReader& d) { read_dns(d, c.dns); });
    m.nested("proxy", [&](MapReader& p) { read_proxy(p, c.proxy); });
    m.nested("admin", [&](MapReader& a) {
      a.read("listen", c.admin.listen, parse_listen_endpoint);
      a.read("allow", c.admin.allow, parse_allow);
      a.read("token_file", c.admin.token_file, parse_path);
    });
    if (auto v = m.take("registries")) {
      auto list = parse_list<RegistryConfig>(ctx, *v, parse_registry);
      if (list) {
        c.registries = std::move(*list);
        validate_registries(ctx, v->node, v->mark, c.registries);
      }
    }
    m.nested("storage", [&](MapReader& s) {
      storage_path_set = s.has("path");
      s.read("backend", c.storage.backend, parse_storage_backend);
      s.read("path", c.storage.path, parse_path);
      s.read("spool", c.storage.spool, parse_path);
      spool_set = s.has("spool");
      s.nested("s3", [&](MapReader& b) { s3_given = read_s3(b, c.storage.s3); });
      std::optional<Value> max_size = s.take("max_size");
      if (max_size) {
        if (auto size = parse_size_value(ctx, *max_size)) c.storage.max_size = *size;
      }
      // A share of max_size ("90%") or a size below it; 90% when not set.
      std::uint64_t percent = 90;
      if (auto v = s.take("low_watermark")) {
        std::string text = v->node.IsScalar() ? v->node.Scalar() : std::string();
        if (text.size() >= 2 && text.back() == '%') {
          std::string number = text.substr(0, text.size() - 1);
          Value share{YAML::Node(number), v->mark, v->path};
          if (auto p = parse_count(1, 99)(ctx, share)) percent = *p;
        } else if (auto size = parse_size_value(ctx, *v)) {
          if (c.storage.max_size == 0) {
            ctx.error(v->mark, v->path, "a size needs storage.max_size, which it must be below");
          } else if (*size == 0 || *size >= c.storage.max_size) {
            ctx.error(v->mark, v->path,
                      "must be above 0 and below storage.max_size (" +
                          std::to_string(c.storage.max_size) + " bytes), got " + text);
          } else {
            c.storage.low_watermark = *size;
          }
          percent = 0;
        }
      }
      if (percent != 0)
        c.storage.low_watermark =
            c.storage.max_size / 100 * percent + c.storage.max_size % 100 * percent / 100;
      s.read("min_free", c.storage.min_free, parse_size_value);
      storage_mark = s.mark();
    });
    m.nested("retention", [&](MapReader& r) {
      r.read("interval", c.retention.interval,
             duration_within(std::chrono::minutes(1), Duration::max(), "must be at least 1m"));
      if (auto v = r.take("rules")) {
        if (auto rules = parse_list<RetentionRule>(ctx, *v, parse_retention_rule)) {
          c.retention.rules = std::move(*rules);
        }
      }
    });
    m.nested("prefetch", [&](MapReader& p) {
      p.read("interval", c.prefetch.interval,
             duration_within(std::chrono::minutes(1), Duration::max(), "must be at least 1m"));
      if (auto v = p.take("refs")) {
        if (auto refs = parse_list<std::string>(ctx, *v, parse_prefetch_ref(c.registries))) {
          c.prefetch.refs = std::move(*refs);
        }
      }
      if (auto v = p.take("platforms")) {
        if (auto platforms = parse_list<PlatformFilter>(ctx, *v, parse_platform)) {
          if (platforms->empty()) {
            ctx.error(v->mark, v->path, "needs at least one platform, or [all]");
          } else {
            c.prefetch.platforms = std::move(*platforms);
          }
        }
      }
    });
    m.nested("ca", [&](MapReader& a) {
      a.read("cert_file", c.ca.cert_file, parse_path);
      a.read("key_file", c.ca.key_file, parse_path);
      if (c.ca.cert_file.empty() != c.ca.key_file.empty()) {
        ctx.error(a.mark(), "ca", "cert_file and key_file go together: set both or neither");
      }
    });
    m.nested("health", [&](MapReader& h) {
      auto positive = duration_within(Duration(1), Duration::max(), "must be greater than zero");
      h.read("interval", c.health.interval, positive);
      h.read("timeout", c.health.timeout, positive);
      h.read("fall", c.health.fall, [](Context& cx, const Value& v) {
        return narrowed<std::uint32_t>(parse_count(1, 100)(cx, v));
      });
      h.read("rise", c.health.rise, [](Context& cx, const Value& v) {
        return narrowed<std::uint32_t>(parse_count(1, 100)(cx, v));
      });
      if (c.health.timeout > c.health.interval) {
        ctx.error(h.mark(), "health.timeout",
                  "must not exceed health.interval, or checks would overlap");
      }
    });
  }
  if (c.storage.path.empty() || !storage_path_set) c.storage.path = c.state_dir + "/cache";
  if (c.storage.spool.empty() || !spool_set) c.storage.spool = c.state_dir + "/spool";
  if (c.storage.backend == StorageBackend::s3) {
    validate_s3(ctx, storage_mark, c.storage.s3, s3_given);
  }

  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const ConfigError& a, const ConfigError& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  if (result.errors.empty()) result.config = std::move(c);
  return result;
}

LoadResult load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    result.errors.push_back(ConfigError{path, 0, 0, "", "cannot open the file"});
    return result;
  }
  std::ostringstream content;
  content << in.rdbuf();
  return load_string(content.str(), path);
}

}  // namespace pullthrough::config
