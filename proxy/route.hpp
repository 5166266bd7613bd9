// The OCI distribution API's URL space: which endpoint a request path names, with the repository
// name, tag and digest checked against the spec's grammars before anything touches the disk or an
// upstream. A path that parses here cannot name a file outside the store ("..", "/", "%2e" and
// friends are not in any of the grammars).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/oci_error.hpp"

namespace pullthrough::proxy {

// OCI distribution spec, "Pulling manifests": <name> is path components of
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* separated by '/'. Clients cap host + '/' + name at 255
// characters; the name alone is capped at 255 here.
bool is_valid_repository(std::string_view name);

// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
bool is_valid_tag(std::string_view tag);

enum class DigestStatus { ok, malformed, unsupported };

// algorithm ":" encoded, per the spec's digest grammar. Only sha256 (64 lower-case hex) and sha512
// (128 lower-case hex) are ok; another well-formed algorithm is unsupported.
DigestStatus check_digest(std::string_view digest);

enum class ApiEndpoint : std::uint8_t {
  base,       // /v2/
  manifest,   // /v2/<name>/manifests/<tag or digest>
  blob,       // /v2/<name>/blobs/<digest>
  tags_list,  // /v2/<name>/tags/list
  referrers,  // /v2/<name>/referrers/<digest>
  upload,     // /v2/<name>/blobs/uploads/... (push)
};

// Why a path names nothing the appliance serves. A reference outside the grammars names content
// that cannot exist, so for manifests and blobs it is "unknown" (404), as registry:2 answers and
// the distribution spec's conformance tests expect, not a 400.
enum class RouteError : std::uint8_t {
  not_found,           // not an API path at all
  name_invalid,        // the repository name is outside the grammar
  manifest_unknown,    // a manifest reference that is neither a valid tag nor a valid digest
  blob_unknown,        // a blob "digest" that is not a digest
  digest_invalid,      // a referrers subject that is not a digest
  unsupported_digest,  // a well-formed digest of an algorithm the appliance does not verify
};

// The OCI error, and its HTTP status, that answers each RouteError.
OciError oci_error_of(RouteError error);
unsigned status_of(RouteError error);

struct Route {
  ApiEndpoint endpoint = ApiEndpoint::base;
  std::string repository;  // empty for base
  std::string reference;   // tag or digest; empty for base, tags_list and upload
  bool reference_is_digest = false;
};

struct RouteResult {
  std::optional<Route> route;
  RouteError error = RouteError::not_found;
  std::string message;  // for the OCI error body, e.g. "repository name \"a/../b\" is invalid"
};

// `target` is the request-target as sent (origin form, possibly with a query string). No
// percent-decoding is done: none of the grammars allow '%', so an encoded path is invalid.
RouteResult parse_route(std::string_view target);

std::string_view to_string(RouteError error);

}  // namespace pullthrough::proxy
