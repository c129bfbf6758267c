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
#include "src/image/platform.h"

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

// Size caps of the JSON documents an image is described by: a manifest or
// index (as fetched, from an OCI layout or from the store), an image config.
inline constexpr uint64_t kMaxManifestBytes = uint64_t{4} << 20;
inline constexpr uint64_t kMaxConfigBytes = uint64_t{8} << 20;

struct Descriptor {
  std::string media_type;
  std::string digest;  // validated "sha256:<hex>"
  int64_t size = 0;    // >= 0
  std::map<std::string, std::string> annotations;
  std::vector<std::string> urls;  // foreign / non-distributable layers: alternative locations
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

// Every body below is read by ParseJsonDocument (src/image/json_document.h): one
// over its cap (kMaxManifestBytes, kMaxConfigBytes), nested deeper than 64
// levels or holding more than 1,048,576 values is kCorruption
// ("manifest: JSON nested deeper than 64 levels at offset 69").

// Classifies a manifest body using Content-Type (parameters stripped,
// case-insensitive) and, when absent or generic (application/json,
// text/plain, application/octet-stream), the body's mediaType / shape
// (manifests[] => index, config+layers => manifest). Schema 1 (by either
// Content-Type, mediaType, schemaVersion 1 or fsLayers) and unknown types are
// kUnsupported with a clear message ("schema 1 manifests are not supported;
// rebuild or re-push the image"). A body mediaType that disagrees with a
// specific Content-Type is kCorruption (CVE-2021-41190); so is invalid JSON,
// a non-object, or a key that appears twice among those read.
Result<ManifestKind> ClassifyManifest(std::string_view content_type, std::string_view body);

// The same decision as ClassifyManifest, returning the effective media type
// (one of kOciIndex, kDockerList, kOciManifest, kDockerManifest; a sniffed
// body without mediaType is reported as the OCI type).
Result<std::string> ManifestMediaType(std::string_view content_type, std::string_view body);

// Compression of a layer media type: OCI tar / tar+gzip / tar+zstd, their
// nondistributable variants, Docker rootfs.diff.tar{,.gzip,.zstd} and
// rootfs.foreign.diff.tar.gzip. "+encrypted" and unknown types are
// kUnsupported naming the type.
Result<Compression> LayerCompression(std::string_view media_type);

// Parses an index (OCI index or Docker manifest list) into platform entries,
// in document order. Every entry needs mediaType, a valid sha256 digest and a
// size >= 0; platforms are normalised; attestation entries are flagged.
// Errors are kCorruption naming the JSON path ("index.manifests[2].digest: …").
Result<std::vector<IndexEntry>> ParseIndex(std::string_view body);

// Parses an image manifest; layer media types must be tar, tar+gzip or
// tar+zstd (OCI, Docker, nondistributable); +encrypted and unknown layer types
// are kUnsupported naming the media type. Digests are validated. A config
// media type other than the OCI / Docker image config is kUnsupported (an
// artifact, not an image). An absent mediaType reads as OCI.
Result<ImageManifest> ParseImageManifest(std::string_view body);

struct ImageConfig {
  std::string os, architecture, variant;
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir, user, stop_signal;
  std::vector<std::string> exposed_ports;  // sorted keys: "80/tcp"
  std::vector<std::string> volumes;        // sorted keys: "/data"
  std::map<std::string, std::string> labels;
  std::vector<std::string> diff_ids;  // "sha256:<hex>", validated
  std::string created, author;
};

// Parses an image config; rootfs.type must be "layers" and rootfs.diff_ids
// valid sha256 digests. Entrypoint/Cmd/Env/Labels/ExposedPorts null or absent
// give empty values; wrong JSON types are kCorruption naming the field
// ("config.config.Cmd: want an array of strings"). The caller checks
// len(diff_ids) == len(layers).
Result<ImageConfig> ParseImageConfig(std::string_view body);

}  // namespace lazyroot
