// Limits: the budgets every image is parsed, merged and extracted under.
// Images, registry answers and the store's own files are hostile input; each
// count and size read from them is checked against these before it sizes an
// allocation, a loop or a recursion. Two kinds:
//  - kernel limits (constexpr): what Linux itself cannot hold; an entry over
//    them could never be extracted, so they are not raisable;
//  - budgets (fields): generous defaults that every real image fits with a
//    wide margin, raisable per command with `--limit NAME=VALUE` or for every
//    command with LAZYROOT_LIMITS="NAME=VALUE,…" (see ParseLimits).
// Exceeding either is Status::LimitExceeded naming the layer, the entry
// (offset) and the limit. Value type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "index/status.h"
#include "index/tar_entry.h"

namespace lazyroot {

struct Limits {
  // Kernel limits (linux/limits.h, xattr(7)).
  static constexpr size_t kMaxXattrName = 255;         // XATTR_NAME_MAX: one name, namespace prefix included
  static constexpr size_t kMaxXattrValue = 65536;      // XATTR_SIZE_MAX: one value
  static constexpr size_t kMaxXattrsPerEntry = 65536;  // names + values of one entry (XATTR_LIST_MAX)
  static constexpr size_t kMaxSymlinkTarget = 4095;    // PATH_MAX - 1: what readlink(2) can return
  static constexpr size_t kMaxPath = 4096;             // an entry's path or hardlink target, bytes
  static constexpr size_t kMaxComponent = 255;         // NAME_MAX: one path component

  // Budgets. "metadata" counts the bytes of paths, link targets, user and
  // group names, and xattr names and values: what an index or tree stores
  // per entry besides its fixed-size fields.
  uint64_t layer_entries = uint64_t{1} << 20;     // tar entries in one layer
  uint64_t layer_metadata = uint64_t{64} << 20;    // metadata bytes in one layer
  // Tar entries over all layers of an image, and the directories their paths
  // imply: the merge holds ~0.5 KiB per node, so this bounds extract's and a
  // rebuilding mount's memory (a whole Debian /usr is ~160k entries).
  uint64_t image_entries = uint64_t{1} << 20;
  uint64_t image_metadata = uint64_t{128} << 20;  // metadata bytes over all layers
  // Path components the merge may walk while resolving symlinked parents,
  // summed over the whole image (resolved parents are memoised, so a real
  // image needs a few per entry).
  uint64_t symlink_steps = uint64_t{1} << 24;
  // Layers in one manifest (each costs a few ms of bookkeeping even when they
  // repeat one blob; overlayfs stops at ~500 lower layers, Docker at 127).
  uint64_t image_layers = 1000;
};

// Applies "NAME=VALUE[,NAME=VALUE…]" to *limits. Names: layer-entries,
// layer-metadata, image-entries, image-metadata, symlink-steps, image-layers. Sizes take
// K, M, G suffixes (powers of 1024). InvalidArgument naming the bad item.
Status ParseLimits(std::string_view text, Limits* limits);

// What an entry costs against the "metadata" budgets: the bytes of its path,
// link target, user and group names, and xattr names and values.
uint64_t MetadataBytes(const TarEntry& e);

// "tar entry at offset 1536 (etc/passwd)": how a limit error names an entry;
// a path longer than 64 bytes is cut ("…") so a hostile one cannot flood
// the message.
std::string DescribeEntry(uint64_t header_offset, std::string_view path);

// LimitExceeded when `entries` or `metadata` (what a layer, or an image's
// layers together, hold) is over the budget: "the layer has more than
// 1048576 entries (limit layer-entries; raise with --limit
// layer-entries=N)". scope is "layer" or "image"; callers add which layer
// and entry.
Status CheckBudget(const Limits& limits, std::string_view scope, uint64_t entries, uint64_t metadata);

}  // namespace lazyroot
