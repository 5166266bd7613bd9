#include "proxy/access/challenges.hpp"

#include <utility>

#include <algorithm>

#include "core/net.hpp"
#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

// parse_challenges refuses longer values, so a rewritten value past this would not parse again;
// clients are no more lenient than the appliance.
constexpr std::size_t kMaxFieldValueLength = 8192;
// A DNS name is at most 253 characters; with brackets, an IPv6 literal and ":65535" a Host
// field value that names a host stays well below this.
constexpr std::size_t kMaxClientHostLength = 300;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_name_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' ||
         c == '_';
}

bool is_port(std::string_view text) {
  if (text.empty() || text.size() > 5 || !std::all_of(text.begin(), text.end(), is_digit)) {
    return false;
  }
  unsigned value = 0;
  for (char c : text) value = value * 10 + static_cast<unsigned>(c - '0');
  return value >= 1 && value <= 65535;
}

// RFC 9110 7.2: Host = uri-host [ ":" port ], narrowed to what a registry's name can be (a DNS
// name or an IP literal), since the value is copied into a header and a URL.
bool is_client_host(std::string_view host) {
  if (host.empty() || host.size() > kMaxClientHostLength) return false;
  std::string_view rest;
  if (host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view literal = host.substr(1, close - 1);
    if (literal.empty() || !std::all_of(literal.begin(), literal.end(), [](char c) {
          return is_hex_digit(c) || c == ':' || c == '.';
        })) {
      return false;
    }
    const auto address = core::parse_ip(literal);
    if (!address || !address->is_v6()) return false;
    rest = host.substr(close + 1);
  } else {
    const std::size_t colon = std::min(host.find(':'), host.size());
    const std::string_view name = host.substr(0, colon);
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_name_char)) return false;
    rest = host.substr(colon);
  }
  if (rest.empty()) return true;
  return rest.front() == ':' && is_port(rest.substr(1));
}

// RFC 9110 5.6.4: a quoted-string carries HTAB, SP, VCHAR and obs-text, with '"' and '\'
// escaped. Other controls cannot be carried at all, so they are left out.
void append_quoted(std::string& out, std::string_view value) {
  out += '"';
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t') || byte == 0x7F) continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

void append_param(std::string& out, bool& first, std::string_view name, std::string_view value) {
  out += first ? " " : ", ";
  first = false;
  out += name;
  out += '=';
  append_quoted(out, value);
}

}  // namespace

std::string format_challenge(const Challenge& challenge) {
  // Schemes are case-insensitive (RFC 9110 11.1); "Bearer" and "Basic" are how registries and
  // RFC 6750 / RFC 7617 write them.
  std::string out = challenge.scheme;
  if (!out.empty() && out.front() >= 'a' && out.front() <= 'z') {
    out.front() = static_cast<char>(out.front() - 'a' + 'A');
  }
  if (!challenge.token68.empty()) {
    out += ' ';
    out += challenge.token68;
    return out;
  }
  bool first = true;
  if (const auto realm = challenge.params.find("realm"); realm != challenge.params.end()) {
    append_param(out, first, realm->first, realm->second);
  }
  for (const auto& [name, value] : challenge.params) {
    if (name != "realm") append_param(out, first, name, value);
  }
  return out;
}

std::optional<RewrittenChallenges> rewrite_challenges(std::string_view field_value,
                                                      std::string_view client_host) {
  if (!is_client_host(client_host)) return std::nullopt;
  auto challenges = parse_challenges(field_value);
  if (!challenges) return std::nullopt;

  const std::string own_realm = "https://" + std::string(client_host) + std::string(kTokenPath);
  RewrittenChallenges out;
  for (Challenge& challenge : *challenges) {
    if (challenge.scheme != "bearer") continue;
    const auto realm = challenge.params.find("realm");
    // RFC 6750 3 makes the realm optional; without one a client cannot ask for a token anywhere,
    // through the appliance or not, so the challenge passes as it is.
    if (realm == challenge.params.end()) continue;
    // parse_absolute_url drops a fragment; a realm with one is not an absolute-URI (RFC 3986
    // 4.3) and is refused, as token_request_url refuses it.
    if (realm->second.find('#') != std::string::npos) return std::nullopt;
    auto location = parse_absolute_url(realm->second);
    if (!location) return std::nullopt;
    if (!out.realm) out.realm = std::move(*location);
    realm->second = own_realm;
  }
  for (const Challenge& challenge : *challenges) {
    if (!out.value.empty()) out.value += ", ";
    out.value += format_challenge(challenge);
  }
  if (out.value.size() > kMaxFieldValueLength) return std::nullopt;
  return out;
}

RealmBook::RealmBook(const core::Clock& clock) : clock_(clock) {}

void RealmBook::record_realm(const std::string& host, const Location& realm) {
  std::lock_guard lock(mutex_);
  realms_.insert_or_assign(host, realm);
}

std::optional<Location> RealmBook::realm(const std::string& host) const {
  std::lock_guard lock(mutex_);
  const auto found = realms_.find(host);
  if (found == realms_.end()) return std::nullopt;
  return found->second;
}

void RealmBook::record_base(const std::string& host, BaseAnswer answer) {
  answer.seen = clock_.now();
  std::lock_guard lock(mutex_);
  bases_.insert_or_assign(host, std::move(answer));
}

std::optional<RealmBook::BaseAnswer> RealmBook::base(const std::string& host) const {
  std::lock_guard lock(mutex_);
  const auto found = bases_.find(host);
  if (found == bases_.end()) return std::nullopt;
  return found->second;
}

}  // namespace pullthrough::proxy
