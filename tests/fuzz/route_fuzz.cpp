// Fuzzes the request-path router: any request-target must either be rejected or yield a route
// whose parts satisfy the grammars they were checked against.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/route.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view target(reinterpret_cast<const char*>(data), size);
  auto result = pullthrough::proxy::parse_route(target);
  if (!result.route) return 0;
  const auto& route = *result.route;
  using pullthrough::proxy::ApiEndpoint;
  if (route.endpoint == ApiEndpoint::base) return 0;
  if (!pullthrough::proxy::is_valid_repository(route.repository)) std::abort();
  if (route.repository.find("..") != std::string::npos) std::abort();
  if (route.reference_is_digest &&
      pullthrough::proxy::check_digest(route.reference) != pullthrough::proxy::DigestStatus::ok) {
    std::abort();
  }
  if (route.endpoint == ApiEndpoint::manifest && !route.reference_is_digest &&
      !pullthrough::proxy::is_valid_tag(route.reference)) {
    std::abort();
  }
  return 0;
}
