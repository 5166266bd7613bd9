// Fuzzes what image lifetime reads from the network: the manifests a prefetch walks (index
// children with their platforms, an image's config and layers), and what the admin listener's
// /cache endpoints take (query values, pin patterns, platforms). Byte 0 picks the parser; the rest
// is its input. Invariants: no crash; digests handed on pass the digest grammar (the store names
// files after them); a decoded query value re-encodes to something that decodes to it again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "app/cache_admin.hpp"
#include "fuzz_check.hpp"
#include "proxy/lifecycle/pin.hpp"
#include "proxy/lifecycle/prefetch.hpp"
#include "proxy/route.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pullthrough;
  using fuzz::check;
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string error;
  switch (data[0] % 5) {
    case 0:
      if (auto children = proxy::index_children(input)) {
        for (const auto& child : *children) check(!child.platform.empty(), "a platform is named");
      }
      break;
    case 1:
      if (auto blobs = proxy::image_blobs(input)) {
        check(!blobs->empty(), "an image names at least its config");
        for (const auto& blob : *blobs) {
          check(proxy::check_digest(blob.digest) == proxy::DigestStatus::ok, "digests are valid");
        }
      }
      break;
    case 2:
      if (auto value = app::query_value(input, "ref")) {
        auto again = app::query_value("ref=" + app::percent_encode(*value), "ref");
        check(again && *again == *value, "percent-encoding round-trips");
      }
      break;
    case 3:
      if (auto pin = proxy::PinPattern::parse(input, error)) {
        check(pin->text() == input, "a pin keeps its text");
        pin->covers("quay.io/org/app", "v1", {});
      } else {
        check(!error.empty(), "a refused pin says why");
      }
      break;
    case 4:
      if (auto platform = proxy::PlatformFilter::parse(input, error)) {
        check(proxy::PlatformFilter::parse(platform->to_string(), error).has_value(),
              "a platform's text parses again");
      } else {
        check(!error.empty(), "a refused platform says why");
      }
      break;
  }
  return 0;
}
