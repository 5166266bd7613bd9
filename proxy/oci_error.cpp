#include "proxy/oci_error.hpp"

#include <nlohmann/json.hpp>

namespace pullthrough::proxy {

std::string_view code_of(OciError error) {
  switch (error) {
    case OciError::blob_unknown:
      return "BLOB_UNKNOWN";
    case OciError::manifest_unknown:
      return "MANIFEST_UNKNOWN";
    case OciError::name_unknown:
      return "NAME_UNKNOWN";
    case OciError::name_invalid:
      return "NAME_INVALID";
    case OciError::digest_invalid:
      return "DIGEST_INVALID";
    case OciError::manifest_invalid:
      return "MANIFEST_INVALID";
    case OciError::unsupported:
      return "UNSUPPORTED";
    case OciError::unauthorized:
      return "UNAUTHORIZED";
    case OciError::denied:
      return "DENIED";
    case OciError::too_many_requests:
      return "TOOMANYREQUESTS";
    case OciError::unavailable:
      return "UNAVAILABLE";
    case OciError::upstream_error:
      return "UPSTREAM_ERROR";
    case OciError::range_invalid:
      return "RANGE_INVALID";
    case OciError::misdirected:
      return "MISDIRECTED";
    case OciError::not_found:
      return "NOT_FOUND";
  }
  return "UNKNOWN";
}

unsigned status_of(OciError error) {
  switch (error) {
    case OciError::blob_unknown:
    case OciError::manifest_unknown:
    case OciError::name_unknown:
    case OciError::not_found:
      return 404;
    case OciError::name_invalid:
    case OciError::digest_invalid:
    case OciError::manifest_invalid:
      return 400;
    case OciError::unsupported:
      return 405;
    case OciError::unauthorized:
      return 401;
    case OciError::denied:
      return 403;
    case OciError::too_many_requests:
      return 429;
    case OciError::unavailable:
      return 503;
    case OciError::upstream_error:
      return 502;
    case OciError::range_invalid:
      return 416;
    case OciError::misdirected:
      return 421;
  }
  return 500;
}

std::string error_body(OciError error, std::string_view message, std::string_view detail) {
  nlohmann::json entry = {{"code", code_of(error)}, {"message", message}};
  if (!detail.empty()) entry["detail"] = detail;
  // Invalid UTF-8 in a message (it may quote a client's bytes) is replaced, never thrown on.
  return nlohmann::json({{"errors", nlohmann::json::array({entry})}})
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

}  // namespace pullthrough::proxy
