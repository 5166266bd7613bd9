#include "proxy/lifecycle/manifest_references.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "proxy/media_types.hpp"
#include "proxy/route.hpp"

namespace pullthrough::proxy {
namespace {

using Json = nlohmann::json;

// The digest of the descriptor at `where`, checked; nullopt with `error` set otherwise.
std::optional<std::string> descriptor_digest(const Json& descriptor, const std::string& where,
                                             std::string& error) {
  if (!descriptor.is_object()) {
    error = where + " is not a descriptor (a JSON object)";
    return std::nullopt;
  }
  auto digest = descriptor.find("digest");
  if (digest == descriptor.end() || !digest->is_string()) {
    error = where + " has no digest";
    return std::nullopt;
  }
  const auto& text = digest->get_ref<const std::string&>();
  switch (check_digest(text)) {
    case DigestStatus::ok:
      return text;
    case DigestStatus::unsupported:
      error = where + " has a digest of an algorithm the cache does not verify";
      return std::nullopt;
    case DigestStatus::malformed:
      break;
  }
  error = where + " has a malformed digest";
  return std::nullopt;
}

void add_once(std::vector<std::string>& list, std::string digest) {
  if (std::find(list.begin(), list.end(), digest) == list.end()) list.push_back(std::move(digest));
}

// The digests of the descriptors in the list `key` of `manifest` into `out`; a missing list is
// an error only when `required`.
bool read_list(const Json& manifest, const char* key, bool required, std::vector<std::string>& out,
               std::string& error) {
  auto list = manifest.find(key);
  if (list == manifest.end()) {
    if (required) error = std::string("no \"") + key + "\" list";
    return !required;
  }
  if (!list->is_array()) {
    error = std::string("\"") + key + "\" is not a list";
    return false;
  }
  for (std::size_t i = 0; i < list->size(); ++i) {
    auto digest =
        descriptor_digest((*list)[i], std::string(key) + "[" + std::to_string(i) + "]", error);
    if (!digest) return false;
    add_once(out, std::move(*digest));
  }
  return true;
}

}  // namespace

std::optional<ManifestReferences> manifest_references(std::string_view media_type,
                                                      std::string_view body, std::string& error) {
  const bool index = media_type == kOciIndex || media_type == kDockerList;
  if (!index && media_type != kOciManifest && media_type != kDockerManifest) {
    error = "\"" + std::string(media_type) + "\" is not a manifest type the cache keeps";
    return std::nullopt;
  }
  // No exceptions: a parse error yields a discarded value, and only checked accessors follow.
  const Json manifest = Json::parse(body, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  ManifestReferences references;
  if (index) {
    if (!read_list(manifest, "manifests", true, references.manifests, error)) return std::nullopt;
  } else {
    auto config = manifest.find("config");
    if (config == manifest.end()) {
      error = "no config";
      return std::nullopt;
    }
    auto digest = descriptor_digest(*config, "config", error);
    if (!digest) return std::nullopt;
    references.blobs.push_back(std::move(*digest));
    // OCI requires layers; an artifact may list none. Docker's schema 2 always has them.
    if (!read_list(manifest, "layers", false, references.blobs, error)) return std::nullopt;
  }
  if (auto subject = manifest.find("subject"); subject != manifest.end()) {
    auto digest = descriptor_digest(*subject, "subject", error);
    if (!digest) return std::nullopt;
    references.subject = std::move(*digest);
  }
  return references;
}

}  // namespace pullthrough::proxy
