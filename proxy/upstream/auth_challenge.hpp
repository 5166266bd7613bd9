// Upstream authentication: the WWW-Authenticate challenges a registry sends with a 401 (RFC 9110
// 11.6.1, syntax in 11.2), the token request a Bearer challenge asks for (the Docker/OCI token
// authentication flow), and the token endpoint's JSON answer. Everything here reads text an
// upstream controls, so every function bounds its work and reports bad input as an empty optional
// instead of throwing.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullthrough::proxy {

struct Challenge {
  std::string scheme;                         // lower case: "bearer", "basic", ...
  std::map<std::string, std::string> params;  // keys lower case; values unquoted and unescaped
  std::string token68;  // when the challenge carried a token68 instead of params
};

// Parses one WWW-Authenticate field value, which may hold several comma-separated challenges.
// Empty when the value is malformed anywhere (then the caller treats the 401 as final): that
// includes a value with no challenge at all (empty, blank or only commas), a duplicated parameter
// within one challenge, a parameter without a value, an unterminated quoted string, a control
// character, and a value longer than 8192 bytes. Where the grammar is ambiguous it decides: right
// after a scheme, "name=" is a token68, and a lone token after a comma starts a new challenge.
std::optional<std::vector<Challenge>> parse_challenges(std::string_view field_value);

// The token request for a Bearer challenge: realm + "?service=...&scope=..." (each value
// percent-encoded per the RFC 3986 unreserved set; '?' or '&' joining correctly when the realm
// already has a query; params absent or empty in the challenge are left out; `scope_override`,
// when given, replaces the challenge's scope). Empty when the challenge is not a Bearer one, or
// its realm is missing or is not an absolute https:// or http:// URL (no fragment, no userinfo).
std::optional<std::string> token_request_url(
    const Challenge& bearer, std::optional<std::string_view> scope_override = std::nullopt);

struct Token {
  std::string value;
  // Docker token spec (RFC 6750 gives the field): 60 s when absent, not an integer, or below 60.
  std::chrono::seconds expires_in{60};
};

// Parses the token endpoint's JSON body: "token" or (when "token" is absent) "access_token";
// "expires_in" (integer seconds, raised to 60 and capped at 86400). Empty when the body is not a
// JSON object or has neither token field, or the token is empty, not a string, or holds a
// character that cannot go into an Authorization header.
std::optional<Token> parse_token_response(std::string_view body);

}  // namespace pullthrough::proxy
