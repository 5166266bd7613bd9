// Fuzzes what retention reads out of manifests from upstream (proxy::manifest_references). Byte 0
// picks the media type; the rest is the manifest. Invariants: no crash, and every digest it
// returns passes the digest grammar, since retention will name files after them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "proxy/lifecycle/manifest_references.hpp"
#include "proxy/media_types.hpp"
#include "proxy/route.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pullthrough::proxy;
  using pullthrough::fuzz::check;
  if (size == 0) return 0;
  const std::string_view types[] = {kOciIndex, kDockerList, kOciManifest, kDockerManifest,
                                    "application/json"};
  std::string_view type = types[data[0] % std::size(types)];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string error;
  auto found = manifest_references(type, body, error);
  if (!found) {
    check(!error.empty(), "a refused manifest says why");
    return 0;
  }
  for (const auto* list : {&found->manifests, &found->blobs}) {
    for (const auto& digest : *list) {
      check(check_digest(digest) == DigestStatus::ok, "every digest returned is valid");
    }
  }
  check(found->subject.empty() || check_digest(found->subject) == DigestStatus::ok,
        "the subject is a valid digest");
  return 0;
}
