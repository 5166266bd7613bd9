#include "proxy/upstream/auth_challenge.hpp"

#include <utility>

#include <algorithm>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

// A real challenge is a few hundred bytes; the cap keeps a hostile upstream from making the parser
// (and the map it fills) do unbounded work.
constexpr std::size_t kMaxFieldValueLength = 8192;

// Docker token authentication spec: a token lives at least 60 s, and 60 s is assumed when the
// server does not say. The day-long cap stops a bogus value from pinning a token in the cache.
constexpr std::chrono::seconds kMinTokenLifetime{60};
constexpr std::chrono::seconds kMaxTokenLifetime{86400};

constexpr std::string_view kHexDigits = "0123456789ABCDEF";

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
// / "`" / "|" / "~" / DIGIT / ALPHA.
bool is_tchar(char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// RFC 9110 11.2: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
bool is_token68_char(char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  return std::string_view("-._~+/").find(c) != std::string_view::npos;
}

// RFC 9110 5.6.3: OWS and BWS are both *( SP / HTAB ).
bool is_whitespace(char c) { return c == ' ' || c == '\t'; }

// RFC 9110 5.6.4: qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text, and a quoted-pair
// may escape HTAB / SP / VCHAR / obs-text. Both leave out the controls and DEL.
bool is_quotable(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return c == '\t' || (byte >= 0x20 && byte != 0x7F);
}

// RFC 3986 2.3: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
bool is_unreserved(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

using core::ascii_lower;

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (ascii_lower(text[i]) != prefix[i]) return false;
  }
  return true;
}

// Recursive descent over RFC 9110 11.6.1: WWW-Authenticate = #challenge, where
// challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]. Challenges and auth-params share
// the comma as separator, so after each comma the parser looks ahead: a token followed by '='
// continues the parameter list, anything else starts the next challenge.
class ChallengeParser {
 public:
  explicit ChallengeParser(std::string_view text) : text_(text) {}

  std::optional<std::vector<Challenge>> parse() {
    std::vector<Challenge> challenges;
    while (true) {
      skip_list_separators();
      if (at_end()) break;
      Challenge challenge;
      if (!parse_challenge(challenge)) return std::nullopt;
      challenges.push_back(std::move(challenge));
    }
    // A 401 whose field names no scheme gives the proxy nothing to answer, the same as garbage.
    if (challenges.empty()) return std::nullopt;
    return challenges;
  }

 private:
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }

  void skip_whitespace() {
    while (!at_end() && is_whitespace(peek())) ++pos_;
  }

  // RFC 9110 5.6.1.2: a recipient accepts and ignores empty list elements, so ", ," between (or
  // around) elements is not an error.
  void skip_list_separators() {
    while (!at_end() && (is_whitespace(peek()) || peek() == ',')) ++pos_;
  }

  std::string_view read_token() {
    const std::size_t start = pos_;
    while (!at_end() && is_tchar(peek())) ++pos_;
    return text_.substr(start, pos_ - start);
  }

  // At the opening quote. RFC 9110 5.6.4: the backslash of a quoted-pair is dropped and the
  // character after it kept as is.
  std::optional<std::string> read_quoted_string() {
    std::string value;
    ++pos_;
    while (!at_end()) {
      char c = peek();
      ++pos_;
      if (c == '"') return value;
      if (c == '\\') {
        if (at_end()) return std::nullopt;
        c = peek();
        ++pos_;
      }
      if (!is_quotable(c)) return std::nullopt;
      value += c;
    }
    return std::nullopt;  // unterminated
  }

  // A token68 must make up the whole rest of its list element; "realm=x" is a parameter, not the
  // token68 "realm=" followed by junk.
  std::optional<std::string> read_token68() {
    std::size_t end = pos_;
    while (end < text_.size() && is_token68_char(text_[end])) ++end;
    if (end == pos_) return std::nullopt;
    while (end < text_.size() && text_[end] == '=') ++end;
    std::size_t next = end;
    while (next < text_.size() && is_whitespace(text_[next])) ++next;
    if (next < text_.size() && text_[next] != ',') return std::nullopt;
    std::string token68(text_.substr(pos_, end - pos_));
    pos_ = next;
    return token68;
  }

  // After a comma inside a parameter list: does an auth-param (token BWS "=") follow? If what
  // follows is not a token at all, say yes so that the parameter parser reports the error.
  bool parameter_follows() const {
    std::size_t i = pos_;
    while (i < text_.size() && is_tchar(text_[i])) ++i;
    if (i == pos_) return true;
    while (i < text_.size() && is_whitespace(text_[i])) ++i;
    return i < text_.size() && text_[i] == '=';
  }

  bool parse_challenge(Challenge& challenge) {
    const std::string_view scheme = read_token();
    if (scheme.empty()) return false;
    // RFC 9110 11.1: the scheme is case-insensitive.
    challenge.scheme = ascii_lower(scheme);
    if (at_end() || peek() == ',') return true;
    // The grammar asks for 1*SP here; HTAB is accepted too, as everywhere else whitespace may be.
    if (!is_whitespace(peek())) return false;
    skip_whitespace();
    if (at_end() || peek() == ',') return true;
    if (auto token68 = read_token68()) {
      challenge.token68 = std::move(*token68);
      return true;
    }
    return parse_params(challenge);
  }

  // auth-param = token BWS "=" BWS ( token / quoted-string ), comma-separated.
  bool parse_params(Challenge& challenge) {
    while (true) {
      const std::string_view name = read_token();
      if (name.empty()) return false;
      skip_whitespace();
      if (at_end() || peek() != '=') return false;
      ++pos_;
      skip_whitespace();
      std::string value;
      if (!at_end() && peek() == '"') {
        auto quoted = read_quoted_string();
        if (!quoted) return false;
        value = std::move(*quoted);
      } else {
        const std::string_view token = read_token();
        if (token.empty()) return false;
        value = std::string(token);
      }
      // RFC 9110 11.2: parameter names are case-insensitive and each may occur only once per
      // challenge; which of two realms to trust cannot be decided, so the value is malformed.
      if (!challenge.params.emplace(ascii_lower(name), std::move(value)).second) return false;
      skip_whitespace();
      if (at_end()) return true;
      if (peek() != ',') return false;
      skip_list_separators();
      if (at_end() || !parameter_follows()) return true;
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

std::string percent_encode(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (is_unreserved(c)) {
      out += c;
    } else {
      // RFC 3986 2.1: upper-case hex digits for consistency.
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += kHexDigits[byte >> 4];
      out += kHexDigits[byte & 0x0F];
    }
  }
  return out;
}

// The realm becomes a request the proxy sends, so it has to be a URL the HTTP client can take as
// is: an absolute-URI (RFC 3986 4.3, which has no fragment) with an http or https scheme (RFC 3986
// 3.1: compared case-insensitively) and a non-empty host.
bool is_absolute_http_url(std::string_view url) {
  // RFC 3986 2: a URI is printable ASCII without spaces.
  for (char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7F) return false;
  }
  if (url.find('#') != std::string_view::npos) return false;
  std::string_view rest;
  if (starts_with_ignoring_case(url, "https://")) {
    rest = url.substr(8);
  } else if (starts_with_ignoring_case(url, "http://")) {
    rest = url.substr(7);
  } else {
    return false;
  }
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  // RFC 9110 4.2.4: userinfo in an http(s) URI is to be treated as an error; it mostly serves to
  // disguise the real host.
  if (authority.find('@') != std::string_view::npos) return false;
  return !authority.empty() && authority.front() != ':';
}

}  // namespace

std::optional<std::vector<Challenge>> parse_challenges(std::string_view field_value) {
  if (field_value.size() > kMaxFieldValueLength) return std::nullopt;
  return ChallengeParser(field_value).parse();
}

std::optional<std::string> token_request_url(const Challenge& bearer,
                                             std::optional<std::string_view> scope_override) {
  if (bearer.scheme != "bearer") return std::nullopt;
  const auto realm = bearer.params.find("realm");
  if (realm == bearer.params.end() || !is_absolute_http_url(realm->second)) return std::nullopt;

  std::string query;
  // An empty value asks the token server for nothing it would not assume anyway, so it is left
  // out like an absent one.
  auto add = [&query](std::string_view name, std::string_view value) {
    if (value.empty()) return;
    if (!query.empty()) query += '&';
    query += name;
    query += '=';
    query += percent_encode(value);
  };
  if (const auto service = bearer.params.find("service"); service != bearer.params.end()) {
    add("service", service->second);
  }
  if (scope_override) {
    add("scope", *scope_override);
  } else if (const auto scope = bearer.params.find("scope"); scope != bearer.params.end()) {
    add("scope", scope->second);
  }

  std::string url = realm->second;
  if (query.empty()) return url;
  if (url.find('?') == std::string::npos) {
    url += '?';
  } else if (url.back() != '?' && url.back() != '&') {
    url += '&';
  }
  url += query;
  return url;
}

std::optional<Token> parse_token_response(std::string_view body) {
  // No exceptions: a parse error yields a discarded value, and only type-checked accessors follow.
  const nlohmann::json json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;

  // Docker token spec: "access_token" is the OAuth 2.0 name for the same value; "token" wins when
  // both are sent.
  auto field = json.find("token");
  if (field == json.end()) field = json.find("access_token");
  if (field == json.end() || !field->is_string()) return std::nullopt;

  Token token;
  token.value = field->get<std::string>();
  if (token.value.empty()) return std::nullopt;
  // The value goes into "Authorization: Bearer <token>" (RFC 6750 2.1); a space, control
  // character or non-ASCII byte there would break or split the request header.
  for (char c : token.value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7F) return std::nullopt;
  }

  token.expires_in = kMinTokenLifetime;
  const auto expires = json.find("expires_in");
  // Non-negative integers parse as unsigned; a negative, fractional or string value falls back to
  // the default rather than failing a token that is otherwise usable.
  if (expires != json.end() && expires->is_number_unsigned()) {
    const std::uint64_t seconds = expires->get<std::uint64_t>();
    const auto capped = static_cast<std::chrono::seconds::rep>(
        std::min<std::uint64_t>(seconds, static_cast<std::uint64_t>(kMaxTokenLifetime.count())));
    token.expires_in = std::max(kMinTokenLifetime, std::chrono::seconds(capped));
  }
  return token;
}

}  // namespace pullthrough::proxy
