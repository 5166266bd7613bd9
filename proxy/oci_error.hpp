// Error responses in the OCI distribution spec's format ("Error Codes"): a JSON body
// {"errors":[{"code":...,"message":...,"detail":...}]} with the status the spec pairs with each
// code. Messages are written for a person reading a client's output.
#pragma once

#include <string>
#include <string_view>

namespace pullthrough::proxy {

enum class OciError {
  blob_unknown,       // 404
  manifest_unknown,   // 404
  name_unknown,       // 404
  name_invalid,       // 400
  digest_invalid,     // 400
  manifest_invalid,   // 400
  unsupported,        // 405 for a method we do not serve, 400 for an unsupported digest
  unauthorized,       // 401
  denied,             // 403
  too_many_requests,  // 429
  unavailable,        // 503: the cache has no copy and the upstream cannot be reached
  upstream_error,     // 502: the upstream answered, but wrongly (bad digest, oversized manifest)
  range_invalid,      // 416
  misdirected,        // 421: Host names another registry than the TLS server name
  not_found,          // 404: not a registry API path
};

// The spec's code ("BLOB_UNKNOWN", ...); the non-spec cases use names registries already use.
std::string_view code_of(OciError error);
unsigned status_of(OciError error);

// The JSON body. `message` and `detail` are escaped; `detail` is left out when empty.
std::string error_body(OciError error, std::string_view message, std::string_view detail = {});

}  // namespace pullthrough::proxy
