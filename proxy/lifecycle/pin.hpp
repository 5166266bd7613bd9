// What `pullthrough cache pin REF` keeps: a tagged reference (`quay.io/org/app:1.2`), a digest
// in a repository (`quay.io/org/app@sha256:...`), or a glob of config/ref_glob.hpp
// (`quay.io/org/**`). A pinned image is never expired or evicted, nor is anything it references.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/ref_glob.hpp"

namespace pullthrough::proxy {

class PinPattern {
 public:
  // Nothing, and `error` says why, for a text that is none of the three forms.
  static std::optional<PinPattern> parse(std::string_view text, std::string& error);

  // Whether the pin covers the content `repository` ("host/path") reached through `tag` (empty
  // when reached by digest), whose top-level manifests are `digests`.
  bool covers(std::string_view repository, std::string_view tag,
              std::span<const std::string> digests) const;

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  config::RefGlob glob_;
  std::string digest_;  // for `repo@digest`: the glob is then the repository alone
};

}  // namespace pullthrough::proxy
