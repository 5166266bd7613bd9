#include "proxy/media_types.hpp"

#include <string>

#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

constexpr std::string_view kUpstreamAccept =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// q=0 (with any number of zero decimals) marks a range as "not acceptable".
bool has_zero_quality(std::string_view params) {
  while (!params.empty()) {
    auto semi = params.find(';');
    auto param = trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi + 1);
    auto eq = param.find('=');
    if (eq == std::string_view::npos || core::ascii_lower(trim(param.substr(0, eq))) != "q")
      continue;
    auto value = trim(param.substr(eq + 1));
    if (value.empty() || value[0] != '0') return false;
    value.remove_prefix(1);
    if (value.empty()) return true;
    if (value[0] != '.') return false;
    value.remove_prefix(1);
    return value.find_first_not_of('0') == std::string_view::npos;
  }
  return false;
}

}  // namespace

std::string_view upstream_accept() { return kUpstreamAccept; }

std::string media_type_of(std::string_view content_type) {
  return core::ascii_lower(trim(content_type.substr(0, content_type.find(';'))));
}

bool accepts(std::string_view accept, std::string_view media_type) {
  if (trim(accept).empty()) return true;
  std::string wanted = core::ascii_lower(media_type);
  auto slash = wanted.find('/');
  std::string wanted_major = wanted.substr(0, slash == std::string::npos ? 0 : slash);
  // The most specific range that matches decides (RFC 9110 12.5.1): "*/*, X;q=0" excludes X.
  int best = 0;  // 3 the type itself, 2 its major type with "/*", 1 "*/*"
  bool acceptable = false;
  while (!accept.empty()) {
    auto comma = accept.find(',');
    auto range = trim(accept.substr(0, comma));
    accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
    if (range.empty()) continue;
    auto semi = range.find(';');
    std::string type = core::ascii_lower(trim(range.substr(0, semi)));
    int specificity = type == wanted                                         ? 3
                      : !wanted_major.empty() && type == wanted_major + "/*" ? 2
                      : type == "*/*"                                        ? 1
                                                                             : 0;
    if (specificity == 0 || specificity < best) continue;
    bool excluded = semi != std::string_view::npos && has_zero_quality(range.substr(semi + 1));
    // Between equally specific ranges, one that admits the type is enough.
    acceptable = (specificity == best && acceptable) || !excluded;
    best = specificity;
  }
  return acceptable;
}

ManifestTypeSet accepted_manifest_types(std::string_view accept) {
  ManifestTypeSet types = 0;
  for (std::size_t i = 0; i < kManifestTypes.size(); ++i) {
    if (accepts(accept, kManifestTypes[i])) types |= static_cast<ManifestTypeSet>(1U << i);
  }
  return types;
}

std::string accept_of(ManifestTypeSet types) {
  std::string out;
  for (std::size_t i = 0; i < kManifestTypes.size(); ++i) {
    if ((types & (1U << i)) == 0) continue;
    if (!out.empty()) out += ", ";
    out += kManifestTypes[i];
  }
  return out;
}

}  // namespace pullthrough::proxy
