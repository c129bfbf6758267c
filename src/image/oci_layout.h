// OciLayoutSource: an OCI image layout (oci-layout, index.json,
// blobs/sha256/…) as an ImageSource, so `lazyroot pull oci:DIR[:tag]` and
// `oci-archive:FILE[:tag]` import without skopeo. The layout is read through
// LayoutFiles: a directory, or the members of a tar archive. Thread-safe
// (reads only).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "src/image/image_source.h"

namespace lazyroot {

// Where a layout's files are read from. name is relative to the layout's
// root ("index.json", "blobs/sha256/<hex>").
class LayoutFiles {
 public:
  virtual ~LayoutFiles() = default;
  // A whole file of at most cap bytes: kNotFound when absent, kCorruption when larger.
  virtual Result<std::string> Read(const std::string& name, uint64_t cap) const = 0;
  // Streams a file from offset (on_start(offset) first); kNotFound when absent.
  virtual Status Stream(const std::string& name, uint64_t offset, const std::function<Status(uint64_t)>& on_start,
                        const std::function<Status(std::span<const uint8_t>)>& sink) const = 0;
  // "oci:/path", "oci-archive:/x.tar": starts messages.
  virtual std::string Describe() const = 0;
};

// Validates oci-layout and reads index.json. tag "" selects the only
// manifest; otherwise the entry whose org.opencontainers.image.ref.name is tag.
Result<std::unique_ptr<ImageSource>> OpenOciLayout(std::shared_ptr<const LayoutFiles> files, const std::string& tag);
// The layout in directory dir.
Result<std::unique_ptr<ImageSource>> OpenOciLayout(const std::string& dir, const std::string& tag);
// The layout inside the tar archive at path (skopeo's oci-archive:).
Result<std::unique_ptr<ImageSource>> OpenOciArchive(const std::string& path, const std::string& tag);

}  // namespace lazyroot
