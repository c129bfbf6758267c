// DockerArchiveSource: a `docker save` tarball as an ImageSource, for
// `lazyroot pull docker-archive:FILE[:REF]`. Both forms docker writes are
// read through manifest.json (as skopeo reads them): the legacy one
// (<id>/layer.tar, <id>.json, symlinks for repeated layers) and docker 25's
// (an OCI layout whose blobs manifest.json names). Such an archive holds no
// registry manifest, so one is synthesized: an OCI image manifest whose
// config is the config member and whose layers are the layer members as
// stored, each with the sha256 of its bytes (for an uncompressed layer that
// is its DiffID, which the pull verifies while it reads the layer; a
// compressed one is hashed when the archive is opened). Thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "src/image/image_source.h"

namespace lazyroot {

// One entry of manifest.json.
struct DockerArchiveImage {
  std::string config;                  // member name of the config
  std::vector<std::string> repo_tags;  // as written ("busybox:latest"); may be empty
  std::vector<std::string> layers;     // member names, base layer first
};

// Parses manifest.json (`what` names it in errors): a JSON array of objects
// with a string Config, an array of strings Layers and an optional array of
// strings RepoTags (other keys are ignored). At most 4 MiB, 65,536 images
// and 65,536 layers per image; Corruption naming the entry otherwise.
Result<std::vector<DockerArchiveImage>> ParseDockerArchiveManifest(std::string_view body, const std::string& what);

// Which image `ref` picks: "" the only one; "@N" the N-th (0-based, as
// skopeo's docker-archive:FILE:@N); otherwise the image one of whose
// RepoTags normalises to the same reference. Errors list what there is.
Result<size_t> SelectDockerArchiveImage(const std::vector<DockerArchiveImage>& images, const std::string& ref,
                                        const std::string& what);

// The synthesized manifest's bytes for a config and layers given as
// (media type, digest, size): compact JSON in the field order Go's encoder
// writes an OCI manifest (so it matches skopeo's conversion byte for byte).
std::string SynthesizeOciManifest(const std::string& config_digest, uint64_t config_size,
                                  const std::vector<std::tuple<std::string, std::string, uint64_t>>& layers);

// Opens the archive at path and the image ref picks (see above). Each
// compressed layer is hashed first (its digest names it); a set `cancel`
// ends that with kAborted "cancelled" within a chunk.
Result<std::unique_ptr<ImageSource>> OpenDockerArchive(const std::string& path, const std::string& ref,
                                                       const std::atomic<bool>* cancel = nullptr);

}  // namespace lazyroot
