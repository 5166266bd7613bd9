#include "proxy/route.hpp"

#include <algorithm>

#include "core/text.hpp"

namespace pullthrough::proxy {
namespace {

constexpr std::size_t kMaxRepositoryLength = 255;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_lower_hex(char c) { return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool is_valid_component(std::string_view part) {
  std::size_t i = 0;
  const std::size_t n = part.size();
  auto alnum_run = [&] {
    std::size_t start = i;
    while (i < n && is_lower_alnum(part[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < n) {
    char c = part[i];
    if (c == '.') {
      ++i;
    } else if (c == '_') {
      ++i;
      if (i < n && part[i] == '_') ++i;
    } else if (c == '-') {
      while (i < n && part[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

// Messages echo attacker-controlled text: keep it short and printable.
std::string quoted(std::string_view text) { return "\"" + core::printable(text, 128) + "\""; }

RouteResult failure(RouteError error, std::string message) {
  RouteResult result;
  result.error = error;
  result.message = std::move(message);
  return result;
}

RouteResult success(ApiEndpoint endpoint, std::string_view repository, std::string_view reference,
                    bool is_digest) {
  RouteResult result;
  result.route = Route{endpoint, std::string(repository), std::string(reference), is_digest};
  return result;
}

std::optional<RouteResult> check_digest_reference(ApiEndpoint endpoint, std::string_view digest) {
  switch (check_digest(digest)) {
    case DigestStatus::ok:
      return std::nullopt;
    case DigestStatus::unsupported:
      return failure(RouteError::unsupported_digest, "digest algorithm of " + quoted(digest) +
                                                         " is not supported (sha256, sha512)");
    case DigestStatus::malformed:
      break;
  }
  switch (endpoint) {
    case ApiEndpoint::manifest:
      return failure(RouteError::manifest_unknown,
                     "reference " + quoted(digest) + " is neither a valid tag nor a digest");
    case ApiEndpoint::blob:
      return failure(RouteError::blob_unknown, "digest " + quoted(digest) + " is invalid");
    default:
      return failure(RouteError::digest_invalid, "digest " + quoted(digest) + " is invalid");
  }
}

}  // namespace

bool is_valid_repository(std::string_view name) {
  if (name.empty() || name.size() > kMaxRepositoryLength) return false;
  std::size_t start = 0;
  while (true) {
    auto slash = name.find('/', start);
    auto part = name.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (!is_valid_component(part)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool is_valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(tag.front())) return false;
  return std::all_of(tag.begin() + 1, tag.end(),
                     [&](char c) { return word(c) || c == '.' || c == '-'; });
}

DigestStatus check_digest(std::string_view digest) {
  auto colon = digest.find(':');
  if (colon == std::string_view::npos || colon == 0) return DigestStatus::malformed;
  auto algorithm = digest.substr(0, colon);
  auto encoded = digest.substr(colon + 1);
  // algorithm-component ([+._-] algorithm-component)*, components [a-z0-9]+
  bool previous_separator = true;
  for (char c : algorithm) {
    bool separator = c == '+' || c == '.' || c == '_' || c == '-';
    if (!separator && !is_lower_alnum(c)) return DigestStatus::malformed;
    if (separator && previous_separator) return DigestStatus::malformed;
    previous_separator = separator;
  }
  if (previous_separator) return DigestStatus::malformed;
  // encoded: [a-zA-Z0-9=_-]+
  if (encoded.empty()) return DigestStatus::malformed;
  for (char c : encoded) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '=' || c == '_' || c == '-';
    if (!ok) return DigestStatus::malformed;
  }
  std::size_t hex_length = 0;
  if (algorithm == "sha256") {
    hex_length = 64;
  } else if (algorithm == "sha512") {
    hex_length = 128;
  } else {
    return DigestStatus::unsupported;
  }
  if (encoded.size() != hex_length || !std::all_of(encoded.begin(), encoded.end(), is_lower_hex)) {
    return DigestStatus::malformed;
  }
  return DigestStatus::ok;
}

RouteResult parse_route(std::string_view target) {
  auto query = target.find('?');
  std::string_view path = target.substr(0, query);
  if (path == "/v2" || path == "/v2/") return success(ApiEndpoint::base, "", "", false);
  if (!path.starts_with("/v2/")) return failure(RouteError::not_found, "not a registry API path");
  path.remove_prefix(4);

  // The name may contain '/', so the endpoint is recognised from the end of the path.
  auto last_slash = path.rfind('/');
  if (last_slash == std::string_view::npos) {
    return failure(RouteError::not_found, "not a registry API path");
  }
  std::string_view last = path.substr(last_slash + 1);
  std::string_view head = path.substr(0, last_slash);
  auto second_slash = head.rfind('/');
  std::string_view kind =
      second_slash == std::string_view::npos ? head : head.substr(second_slash + 1);
  std::string_view name =
      second_slash == std::string_view::npos ? std::string_view() : head.substr(0, second_slash);

  // Uploads (push): <name>/blobs/uploads/ and <name>/blobs/uploads/<session id>.
  if (kind == "uploads" && name.ends_with("/blobs")) {
    auto upload_name = name.substr(0, name.size() - 6);
    if (!is_valid_repository(upload_name)) {
      return failure(RouteError::name_invalid,
                     "repository name " + quoted(upload_name) + " is invalid");
    }
    bool session_ok = last.size() <= 256 && std::all_of(last.begin(), last.end(), [](char c) {
                        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-' ||
                               c == '_' || c == '.' || c == '=';
                      });
    if (!session_ok) return failure(RouteError::not_found, "unknown upload session");
    return success(ApiEndpoint::upload, upload_name, last, false);
  }

  ApiEndpoint endpoint;
  if (kind == "manifests") {
    endpoint = ApiEndpoint::manifest;
  } else if (kind == "blobs") {
    endpoint = ApiEndpoint::blob;
  } else if (kind == "referrers") {
    endpoint = ApiEndpoint::referrers;
  } else if (kind == "tags" && last == "list") {
    endpoint = ApiEndpoint::tags_list;
  } else {
    return failure(RouteError::not_found, "not a registry API path");
  }
  if (!is_valid_repository(name)) {
    return failure(RouteError::name_invalid, "repository name " + quoted(name) + " is invalid");
  }
  if (endpoint == ApiEndpoint::tags_list) return success(endpoint, name, "", false);
  if (endpoint == ApiEndpoint::manifest && last.find(':') == std::string_view::npos) {
    if (!is_valid_tag(last)) {
      return failure(RouteError::manifest_unknown,
                     "reference " + quoted(last) + " is neither a valid tag nor a digest");
    }
    return success(endpoint, name, last, false);
  }
  if (auto bad = check_digest_reference(endpoint, last)) return *bad;
  return success(endpoint, name, last, true);
}

std::string_view to_string(RouteError error) {
  switch (error) {
    case RouteError::not_found:
      return "NOT_FOUND";
    case RouteError::name_invalid:
      return "NAME_INVALID";
    case RouteError::manifest_unknown:
      return "MANIFEST_UNKNOWN";
    case RouteError::blob_unknown:
      return "BLOB_UNKNOWN";
    case RouteError::digest_invalid:
      return "DIGEST_INVALID";
    case RouteError::unsupported_digest:
      return "UNSUPPORTED";
  }
  return "UNKNOWN";
}

OciError oci_error_of(RouteError error) {
  switch (error) {
    case RouteError::not_found:
      return OciError::not_found;
    case RouteError::name_invalid:
      return OciError::name_invalid;
    case RouteError::manifest_unknown:
      return OciError::manifest_unknown;
    case RouteError::blob_unknown:
      return OciError::blob_unknown;
    case RouteError::digest_invalid:
      return OciError::digest_invalid;
    case RouteError::unsupported_digest:
      return OciError::unsupported;
  }
  return OciError::not_found;
}

unsigned status_of(RouteError error) {
  // UNSUPPORTED is a 405 for a method; for a digest algorithm it is the request that is wrong.
  if (error == RouteError::unsupported_digest) return 400;
  return status_of(oci_error_of(error));
}

}  // namespace pullthrough::proxy
