// OpenedImage: what mount and extract need of a pulled image — its merged
// tree (built once from the layer indexes and persisted under trees/, read
// into memory) and its layer blobs with their checkpoint tables. The blobs are
// read through VerifiedByteSource: every byte served is checked against the
// chunk digests recorded at pull, so a blob changed on disk gives kCorruption
// for the reads that touch the change, never different bytes.
//
// Nothing the store does afterwards can crash the process holding it: the
// tree and the checkpoint tables are in memory, each blob is read through a
// descriptor opened here (a blob renamed over or deleted still reads its old
// bytes; one truncated gives kIoError for the reads of what it lost). A tree
// opened lazily (lazy_tree, a mount's) is read through its descriptor the
// same way, block by block, each checked against its checksum.
#pragma once

#include <memory>
#include <string>

#include "index/image_content.h"
#include "index/image_tree.h"
#include "index/limits.h"
#include "src/store/store.h"

namespace lazyroot {

struct OpenedImage {
  ImageRecord record;
  std::shared_ptr<const ImageTree> tree;
  std::shared_ptr<const ImageContent> content;
  bool tree_built = false;  // the tree was merged now rather than loaded
};

struct OpenImageOptions {
  // Layer indexes rebuilt from blobs are under these; the merge keeps to the
  // image-wide budgets and symlink-steps (index/limits.h; --limit, LAZYROOT_LIMITS).
  Limits limits;
  // Only the tree: OpenedImage::content stays null, and a valid stored tree
  // costs no layer index read (what ls, diff and other readers of the tree
  // alone need; a tree to rebuild still reads every layer index).
  bool tree_only = false;
  // Read a stored tree lazily (ImageTree::OpenFileLazy): what a mount does,
  // so that its start does not grow with the tree. The tree's accessors may
  // then throw TreeCorruptionError; a tree damaged where the open reads it
  // (header, block table, root, image and layer names) is rebuilt as ever.
  bool lazy_tree = false;
  // Load each layer's checkpoints and chunk digests at its first read
  // (ImageContent::Load) rather than now, when the stored tree is valid: they
  // grow with the blob (a 768 MiB layer's are 3.6 MB) and a mount's start
  // must not. Only each index's header is read (and checked) now; an index
  // damaged past it is indexed again from the blob at that first read, in
  // memory (the caller may hold no store lock by then).
  bool lazy_tables = false;
};

// Opens the image record's tree (building and persisting it when missing or
// invalid; layer indexes are rebuilt from blobs when needed) and its blobs.
// REQUIRES: the store lock, held shared (src/store/STORE.md): it reads objects gc
// could remove and may write trees/ and index/.
Result<OpenedImage> OpenImage(Store& store, const ImageRecord& record, const OpenImageOptions& options = {});

// Starts reading what a mount's OpenImage will read of `record` (its config
// and layer indexes, not its lazily read tree; the blobs are looked up) into the page cache in the
// background and returns at once. For a caller about to open the image in
// another process: a mount's parent calls it before it forks the daemon, so
// a cold disk works while the daemon starts. Errors are ignored (OpenImage
// reports them). REQUIRES: the store lock, held shared.
void PrefetchImageFiles(const Store& store, const ImageRecord& record);

// The config's rootfs.diff_ids of a pulled image, one per layer of the
// record; kCorruption naming the image when they do not match its layers.
// REQUIRES: the store lock, held shared.
Result<std::vector<std::string>> ImageDiffIds(Store& store, const ImageRecord& record);

// Re-hashes the stored blob (all layers of an image in parallel with
// VerifyLayerBlobs). kCorruption names the blob and what it hashes to. Mount
// and extract need not: their reads are verified chunk by chunk.
Status VerifyStoredBlob(const Store& store, const std::string& digest);
Status VerifyLayerBlobs(const Store& store, const std::vector<std::string>& digests);

}  // namespace lazyroot
