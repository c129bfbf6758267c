// OpenedImage: what mount and extract need of a pulled image — its merged
// tree (built once from the layer indexes and persisted under trees/, then
// mmap'd) and its layer blobs with their checkpoint tables.
#pragma once

#include <memory>
#include <string>

#include "index/file_reader.h"
#include "index/image_tree.h"
#include "src/store.h"

namespace lazyroot {

struct OpenedImage {
  ImageRecord record;
  std::shared_ptr<const ImageTree> tree;
  std::shared_ptr<const ImageContent> content;
  bool tree_built = false;  // the tree was merged now rather than loaded
};

// Opens the image record's tree (building and persisting it when missing or
// invalid; layer indexes are rebuilt from blobs when needed) and its blobs.
Result<OpenedImage> OpenImage(Store& store, const ImageRecord& record);

}  // namespace lazyroot
