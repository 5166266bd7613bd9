// Manifest media types and content negotiation on them (OCI image spec, Docker image manifest
// v2 schema 2). Clients list in Accept the manifest types they can use; a registry answers with
// one of them, and the proxy must not hand a client a type it did not ask for.
#pragma once

#include <span>
#include <string_view>

namespace pullthrough::proxy {

inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";

// Every manifest type the cache stores, most capable first: the Accept it sends upstream when
// filling the cache, so that a tag resolves to the same manifest (an index, for a multi-arch
// image) whichever client asks first.
std::string_view upstream_accept();

// Whether an Accept field value admits `media_type`. An absent or empty Accept, or one with */*
// or application/*, admits anything; otherwise the media ranges are compared case-insensitively
// with their parameters ignored (a q=0 range excludes, RFC 9110 12.5.1).
bool accepts(std::string_view accept, std::string_view media_type);

// `content_type` without parameters or surrounding spaces, lower case.
std::string media_type_of(std::string_view content_type);

}  // namespace pullthrough::proxy
