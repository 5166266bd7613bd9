#include "proxy/lifecycle/pin.hpp"

#include <algorithm>

#include "proxy/route.hpp"

namespace pullthrough::proxy {

std::optional<PinPattern> PinPattern::parse(std::string_view text, std::string& error) {
  PinPattern pin;
  pin.text_ = std::string(text);
  std::string_view pattern = text;
  if (auto at = text.find('@'); at != std::string_view::npos) {
    pin.digest_ = std::string(text.substr(at + 1));
    pattern = text.substr(0, at);
    if (check_digest(pin.digest_) != DigestStatus::ok) {
      error = "\"" + pin.digest_ + "\" is not a digest (sha256:<64 hex> or sha512:<128 hex>)";
      return std::nullopt;
    }
    if (pattern.find('*') != std::string_view::npos) {
      error = "a pin by digest names one repository: no '*' before the '@'";
      return std::nullopt;
    }
  }
  auto glob = config::RefGlob::compile(pattern, error);
  if (!glob) return std::nullopt;
  if (!pin.digest_.empty() && glob->has_tag()) {
    error = "a pin by digest has no tag: host/repository@digest";
    return std::nullopt;
  }
  pin.glob_ = std::move(*glob);
  return pin;
}

bool PinPattern::covers(std::string_view repository, std::string_view tag,
                        std::span<const std::string> digests) const {
  if (digest_.empty()) return glob_.matches(repository, tag);
  return glob_.matches(repository) &&
         std::find(digests.begin(), digests.end(), digest_) != digests.end();
}

}  // namespace pullthrough::proxy
