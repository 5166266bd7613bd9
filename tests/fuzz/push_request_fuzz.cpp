// Fuzzes what a request passed through the appliance meets on its way: a client's request header
// (parsed by Beast, then check_request and the choice of fields to forward), an upstream's
// response header (the fields relayed back, Location and WWW-Authenticate rewritten), and a
// token request's form body. The first byte picks the part; each result must keep its promises.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "config/loader.hpp"
#include "core/text.hpp"
#include "fuzz_check.hpp"
#include "proxy/api/check_request.hpp"
#include "proxy/api/forwarding.hpp"
#include "proxy/api/token_handler.hpp"

namespace {

namespace http = boost::beast::http;
using namespace pullthrough::proxy;
using pullthrough::fuzz::check;

const pullthrough::config::Config& config() {
  static const auto loaded = pullthrough::config::load_string(
      "registries:\n  - {host: quay.io}\n  - {host: ghcr.io, push: deny}\n", "fuzz.yaml");
  return *loaded.config;
}

bool header_safe(std::string_view text) {
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

void request(std::string_view input) {
  http::request_parser<http::empty_body> parser;
  parser.header_limit(16 * 1024);
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(input.data(), input.size()), ec);
  if (!parser.is_header_done()) return;
  const auto& header = parser.get();
  bool has_body = (parser.content_length() && *parser.content_length() > 0) || parser.chunked();
  for (const char* name : {"quay.io", "ghcr.io"}) {
    const auto* registry = config().find_registry(name);
    CheckedRequest checked = check_request(header, has_body, config(), registry, name);
    if (!checked.passed) {
      check(checked.refusal.status == 0 ||
                (checked.refusal.status >= 400 && checked.refusal.status < 600),
            "a refusal is an error status");
      continue;
    }
    if (checked.route) {
      check(is_valid_repository(checked.route->repository) ||
                checked.route->endpoint == ApiEndpoint::base,
            "a routed repository is within the grammar");
      check(checked.route->repository.find("..") == std::string::npos, "no traversal");
    }
    if (registry->push == pullthrough::config::PushMode::deny) {
      check(checked.kind != RequestKind::push, "no push passes where pushes are denied");
    }
    if (has_body) {
      check(checked.kind != RequestKind::pull && checked.kind != RequestKind::base &&
                checked.kind != RequestKind::listing,
            "reads carry no body");
    }
  }
  http::fields forwarded = forwarded_request_fields(header);
  for (const auto& field : forwarded) {
    std::string name = pullthrough::core::ascii_lower(field.name_string());
    check(name != "host" && name != "connection" && name != "transfer-encoding" &&
              name != "content-length" && name != "expect" && name != "upgrade" &&
              name != "keep-alive" && name != "te",
          "no hop-by-hop or framing field goes upstream");
  }
}

void response(std::string_view input) {
  http::response_parser<http::empty_body> parser;
  parser.header_limit(16 * 1024);
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(input.data(), input.size()), ec);
  if (!parser.is_header_done()) return;
  const Origin upstream{"https", "quay.io", 443};
  RelayedHeader relayed = relayed_response_header(parser.get(), upstream, "quay.io:8443");
  check(relayed.header.result_int() == parser.get().result_int(), "status kept");
  for (const auto& field : relayed.header) {
    std::string name = pullthrough::core::ascii_lower(field.name_string());
    check(name != "connection" && name != "transfer-encoding" && name != "keep-alive",
          "no hop-by-hop field comes back");
    check(header_safe(field.value()), "relayed values fit a header");
    if (name == "location") {
      auto parsed = parse_absolute_url(field.value());
      check(!parsed || !(parsed->origin == upstream), "no Location on the upstream's origin");
    }
    if (name == "www-authenticate") {
      check(parse_challenges(field.value()).has_value(), "relayed challenges parse");
    }
  }
  if (relayed.realm) {
    check(relayed.realm->origin.scheme == "https" || relayed.realm->origin.scheme == "http",
          "a realm is an http(s) origin");
  }
}

void form(std::string_view input) {
  for (const char* key : {"username", "password", "refresh_token", "grant_type"}) {
    auto value = form_value(input, key);
    if (value) check(value->size() <= input.size(), "a decoded value is not longer than the form");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      request(input);
      break;
    case 1:
      response(input);
      break;
    default:
      form(input);
      break;
  }
  return 0;
}
