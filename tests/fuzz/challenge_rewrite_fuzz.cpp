// Fuzzes the rewriting of upstream WWW-Authenticate values for clients (proxy/access/challenges):
// any value, with any client Host, is either refused or rewritten into a value that parses again
// to the same challenges and parameters, but each Bearer realm, which names the appliance's token
// endpoint on that host. Each challenge that parses also survives format_challenge unchanged.
// Input: "<client host>\n<field value>"; the whole input is also tried as a value on its own.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "proxy/access/challenges.hpp"
#include "proxy/upstream/auth_challenge.hpp"
#include "proxy/upstream/url.hpp"

namespace {

using namespace pullthrough::proxy;
using pullthrough::fuzz::check;

bool same_challenge(const Challenge& a, const Challenge& b) {
  return a.scheme == b.scheme && a.params == b.params && a.token68 == b.token68;
}

// What may go into a header field value: no CR, LF, NUL or other control but HTAB.
bool field_safe(std::string_view text) {
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t') || byte == 0x7F) return false;
  }
  return true;
}

bool host_chars_only(std::string_view host) {
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return !host.empty();
}

void round_trip_format(const std::vector<Challenge>& challenges) {
  for (const Challenge& challenge : challenges) {
    const std::string text = format_challenge(challenge);
    check(field_safe(text), "a formatted challenge fits in a header field");
    if (text.size() > 8192) continue;  // past what parse_challenges reads at all
    const auto again = parse_challenges(text);
    check(again.has_value(), "a formatted challenge parses");
    check(again->size() == 1, "a formatted challenge is one challenge");
    check(same_challenge(again->front(), challenge), "a formatted challenge parses to itself");
  }
}

void rewrite(std::string_view value, std::string_view host) {
  const auto original = parse_challenges(value);
  if (original) round_trip_format(*original);

  const auto rewritten = rewrite_challenges(value, host);
  if (!rewritten) return;
  check(original.has_value(), "only a value that parses is rewritten");
  check(host_chars_only(host), "only a host[:port] is taken as the client host");
  check(field_safe(rewritten->value), "the rewritten value fits in a header field");

  const auto again = parse_challenges(rewritten->value);
  check(again.has_value(), "the rewritten value parses");
  check(again->size() == original->size(), "as many challenges after the rewrite");
  const std::string own_realm = "https://" + std::string(host) + "/v2/_pullthrough/token";
  bool first_bearer_realm = true;
  for (std::size_t i = 0; i < original->size(); ++i) {
    Challenge expected = (*original)[i];
    if (expected.scheme == "bearer" && expected.params.contains("realm")) {
      const auto real = parse_absolute_url(expected.params["realm"]);
      check(real.has_value(), "a rewritten Bearer realm was an absolute URL");
      check(expected.params["realm"].find('#') == std::string::npos, "no fragment in a realm");
      if (first_bearer_realm) {
        check(rewritten->realm.has_value(), "the first Bearer realm is learnt");
        check(rewritten->realm->origin == real->origin && rewritten->realm->target == real->target,
              "the learnt realm is the first Bearer realm");
        first_bearer_realm = false;
      }
      expected.params["realm"] = own_realm;
    }
    check(same_challenge((*again)[i], expected), "same challenge but the Bearer realm");
  }
  check(first_bearer_realm != rewritten->realm.has_value(),
        "a realm is learnt exactly when a Bearer challenge had one");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  rewrite(input, "reg.example:5000");
  const std::size_t newline = input.find('\n');
  if (newline != std::string_view::npos) {
    rewrite(input.substr(newline + 1), input.substr(0, newline));
  }
  return 0;
}
