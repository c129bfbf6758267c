// SaveImage: writes a stored image back out for other tools (`lazyroot
// save`): an OCI image layout (oci:DIR[:tag], created or added to), a tar of
// one (oci-archive:FILE[:tag]) or a docker save tarball
// (docker-archive:FILE[:ref]). The manifest, config and layer blobs are
// copied as stored, byte for byte, so the digests are the store's; each blob
// is streamed and re-hashed on the way (a damaged store blob fails the save).
// A docker-archive gets docker 25's form: the same blobs under
// blobs/sha256/, manifest.json naming them (layers as stored, compressed or
// not: docker load and skopeo accept both), and index.json and oci-layout.
// Every output appears whole or not at all: archives are written to a temp
// name beside FILE and renamed; a new layout directory is built under a temp
// name and renamed; an existing layout gets its blobs first and its
// index.json replaced last (entries of other tags are kept).
#pragma once

#include <atomic>

#include "index/status.h"
#include "src/image/reference.h"
#include "src/store/store.h"

namespace lazyroot {

struct SaveResult {
  std::string manifest_digest;
  uint64_t blobs = 0, bytes = 0;  // blobs written (a layout's existing ones are not)
};

// REQUIRES: the store lock, held shared. dest.transport is kOciLayout,
// kOciArchive or kDockerArchive (InvalidArgument otherwise). When *interrupt
// turns non-zero (a signal, src/cli/interrupt.h) the copy stops, what was
// written is removed and the result is kAborted.
Result<SaveResult> SaveImage(const Store& store, const ImageRecord& image, const Reference& dest,
                             const std::atomic<int>* interrupt = nullptr);

}  // namespace lazyroot
