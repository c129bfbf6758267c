// The store's unit copies (fs/stream_cache.h UnitCopies, index/unit_copy.h):
//   units/<layer hex>/<unit start, 16 hex digits>-<unit length, hex>
// one file per unit of a layer's stream that a mount decoded inside a long
// span (a single-frame zstd layer). A cache like the layer indexes: a file
// that does not validate (truncated, bad checksum, another layer's, another
// unit's) is removed and the unit decoded again. Written by serving mounts,
// which hold no store lock, each file through a unique temp name and
// rename: any number of mounts of one image may write at once, the last
// rename wins and every version is complete. Not fsynced: after a crash a
// file may be empty or torn, which its checksum catches. Bounded per layer
// (copies of at most twice the blob's bytes plus 16 MiB in the directory,
// whoever wrote them: a writer counts the files it finds as well as its
// own; units are at most 8 MiB and there is one file per unit). gc removes
// a layer's directory with the layer, fsck validates every file, df counts
// them with the indexes.
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fs/stream_cache.h"
#include "index/image_content.h"

namespace lazyroot {

class Store;

// The directory of a layer's unit copies ("sha256:<hex>" digest).
std::string UnitCopyDir(const std::string& store_root, const std::string& layer_digest);
// A copy's file name for the unit [start, start + length). The length is in
// the name so that copies made with another unit size (another version) are
// other files, never mistaken for this unit's.
std::string UnitCopyName(uint64_t start, uint64_t length);

// Unit copies for the layers of content, in content's layer order.
std::shared_ptr<UnitCopies> NewStoreUnitCopies(const Store& store, const ImageContent& content);

}  // namespace lazyroot
