// What a stored manifest keeps alive, for retention's reference counts: an index's child
// manifests, an image manifest's config and layers, and the manifest that a referrer names as
// its subject. A blob or manifest may go only when nothing kept refers to it, in any repository
// or registry, so these lists must be exact: read from the manifest's own bytes, never guessed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullthrough::proxy {

struct ManifestReferences {
  std::vector<std::string> manifests;  // an index's children, in order, each once
  std::vector<std::string> blobs;      // an image manifest's config, then its layers, each once
  std::string subject;                 // the manifest a referrer is about; empty when none
  bool operator==(const ManifestReferences&) const = default;
};

// The references in `body`, a manifest of `media_type` (one of kManifestTypes, as the cache
// stores them). Nothing, and `error` says why, for what is not such a manifest: bytes that are
// not a JSON object, an index without a list of manifests, an image manifest without a config,
// a descriptor without a digest, or a digest that is malformed or of an algorithm the cache does
// not verify.
std::optional<ManifestReferences> manifest_references(std::string_view media_type,
                                                      std::string_view body, std::string& error);

}  // namespace pullthrough::proxy
