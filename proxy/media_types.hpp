// Manifest media types and content negotiation on them (OCI image spec, Docker image manifest
// v2 schema 2). Clients list in Accept the manifest types they can use; a registry answers with
// one of them, and the proxy must not hand a client a type it did not ask for.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pullthrough::proxy {

inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";

// The manifest types a cached tag mapping can be of, most capable first.
inline constexpr std::array<std::string_view, 4> kManifestTypes = {kOciIndex, kDockerList,
                                                                   kOciManifest, kDockerManifest};

// A set of kManifestTypes, bit i for kManifestTypes[i]. Upstream picks the manifest a tag names
// by the manifest types the request accepts, so a tag's mapping is only valid for requests that
// accept the same set: the cache keys tags by it.
using ManifestTypeSet = std::uint8_t;
inline constexpr ManifestTypeSet kAllManifestTypes = 0b1111;

// The kManifestTypes that `accept` admits (see accepts()).
ManifestTypeSet accepted_manifest_types(std::string_view accept);

// An Accept value that admits exactly the types in `types`, in kManifestTypes order;
// upstream_accept() for kAllManifestTypes.
std::string accept_of(ManifestTypeSet types);

// Every manifest type the cache stores, most capable first: the Accept it sends upstream when
// filling the cache, so that a tag resolves to the same manifest (an index, for a multi-arch
// image) whichever client asks first.
std::string_view upstream_accept();

// Whether an Accept field value admits `media_type`. An absent or empty Accept, or one with */*
// or application/*, admits anything; otherwise the media ranges are compared case-insensitively
// with their parameters ignored; the most specific matching range decides, and one with q=0
// excludes (RFC 9110 12.5.1).
bool accepts(std::string_view accept, std::string_view media_type);

// `content_type` without parameters or surrounding spaces, lower case.
std::string media_type_of(std::string_view content_type);

}  // namespace pullthrough::proxy
