// OciLayoutSource: an OCI image layout directory (oci-layout, index.json,
// blobs/sha256/…) as an ImageSource, so `lazyroot pull oci:DIR[:tag]`
// imports without skopeo. Thread-safe (reads only).
#pragma once

#include <memory>
#include <string>

#include "src/image/image_source.h"

namespace lazyroot {

// Validates DIR/oci-layout and reads index.json. tag "" selects the only
// manifest; otherwise the entry whose org.opencontainers.image.ref.name is tag.
Result<std::unique_ptr<ImageSource>> OpenOciLayout(const std::string& dir, const std::string& tag);

}  // namespace lazyroot
