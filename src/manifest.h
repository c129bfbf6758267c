// Parsed OCI/Docker manifests, indexes and image configs (RapidJSON). The raw
// bytes stay authoritative: digests are always of the received bytes, never of
// re-serialised JSON. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "index/compression.h"
#include "index/status.h"
#include "src/platform.h"

namespace lazyroot {

namespace media_type {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
}  // namespace media_type

struct Descriptor {
  std::string media_type;
  std::string digest;  // validated "sha256:<hex>"
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
};

struct Layer {
  Descriptor descriptor;
  Compression compression = Compression::kGzip;  // from the media type
};

struct ImageManifest {
  std::string media_type;  // OCI or Docker v2s2
  Descriptor config;
  std::vector<Layer> layers;
};

enum class ManifestKind { kIndex, kManifest };

// Classifies a manifest body using Content-Type (parameters stripped) and, when
// absent or generic, the body's mediaType / shape. Schema 1 and unknown types
// are kUnsupported with a clear message ("schema 1 manifests are not supported;
// rebuild or re-push the image").
Result<ManifestKind> ClassifyManifest(std::string_view content_type, std::string_view body);

// Parses an index (OCI index or Docker manifest list) into platform entries.
Result<std::vector<IndexEntry>> ParseIndex(std::string_view body);

// Parses an image manifest; layer media types must be tar, tar+gzip or
// tar+zstd (OCI, Docker, nondistributable); +encrypted and unknown layer types
// are kUnsupported naming the media type. Digests are validated.
Result<ImageManifest> ParseImageManifest(std::string_view body);

struct ImageConfig {
  std::string os, architecture, variant;
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir, user, stop_signal;
  std::vector<std::string> exposed_ports;  // sorted keys: "80/tcp"
  std::map<std::string, std::string> labels;
  std::vector<std::string> diff_ids;  // "sha256:<hex>", validated
  std::string created;
};

// Parses an image config; rootfs.type must be "layers". Entrypoint/Cmd null or
// absent give empty vectors.
Result<ImageConfig> ParseImageConfig(std::string_view body);

}  // namespace lazyroot
