// LayerPathMapper: the image path each tar entry of each layer acted on, the
// way the merge applied it (index/merge.cc rules 1-3): the name cleaned, its
// parents resolved through the symlinks that existed when the entry came.
// `which` (src/inspect/layer_query.cc) and `layers` (src/inspect/layer_report.cc) both read
// entries through it, so a file written through `lib -> usr/lib` counts at
// usr/lib/x in both, as it does in the merged tree.
//
// Symlinks are tracked on the nodes of the merged tree: a name is a link from
// its symlink entry until an entry of another type replaces it or a whiteout
// or opaque directory of a higher layer deletes it. So an entry below a name
// that a later layer turns into a link stays below the directory it was
// (usrmerge's /bin), and one below a link that a later layer replaces by a
// directory goes where the link pointed, as the merge put it. Not followed: a
// link whose name is gone from the merged tree, since nothing of that tree
// lies below it.
//
// Feed every entry of every layer, bottom layer first, in tar order. One
// thread. Memory: the image's symlinks plus one resolution per directory.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "index/image_tree.h"
#include "index/tar_entry.h"

namespace lazyroot {

inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

class LayerPathMapper {
 public:
  // `merged` is the image's merged tree; it must outlive the mapper.
  explicit LayerPathMapper(const ImageTree& merged);
  LayerPathMapper(const LayerPathMapper&) = delete;
  LayerPathMapper& operator=(const LayerPathMapper&) = delete;

  enum class Kind : uint8_t {
    kRoot,      // the root directory's own entry ("." or "/")
    kEntry,     // a file, directory, link or device at `path`
    kWhiteout,  // ".wh.NAME": deletes `path`
    kOpaque,    // ".wh..wh..opq": hides what lower layers put below the directory `path` ("" = root)
    kMarker,    // another ".wh..wh.*" (AUFS bookkeeping) or a whiteout naming nothing ("", ".", ".."): no effect
  };
  struct Mapped {
    Kind kind = Kind::kEntry;
    std::string path;  // image path, "" = the root
  };

  // Maps entry `e` of layer `layer` (0 = bottom) and updates the symlinks.
  Mapped Map(uint32_t layer, const TarEntry& e);
  // A hardlink's target as the merge looks it up: cleaned, its parents
  // resolved through the symlinks as they stand (the last component is not
  // followed).
  std::string MapLinkTarget(std::string_view target);

  // ResolveInRoot's tree (index/path_resolve.h): the merged tree's nodes
  // with the symlinks of the layers applied so far.
  NodeId Root() const { return tree_.Root(); }
  bool IsDir(NodeId id) const { return tree_.IsDir(id); }
  bool IsSymlink(NodeId id) const { return targets_.count(id) != 0; }
  std::string_view SymlinkTarget(NodeId id) const { return targets_.at(id); }
  std::optional<NodeId> Child(NodeId dir, std::string_view name) const { return tree_.Lookup(dir, name); }

 private:
  struct Link {
    NodeId node;
    uint32_t layer;
  };
  std::string ResolveParents(std::vector<std::string> components);
  void SetEntry(const std::string& path, const TarEntry& e, uint32_t layer);
  void Delete(const std::string& path, uint32_t layer, bool self);
  bool Remove(const std::string& path);

  const ImageTree& tree_;
  std::unordered_map<NodeId, std::string> targets_;
  std::map<std::string, Link> by_path_;  // links of the layers below the open one
  std::map<std::string, Link> current_;  // links of the open layer (never deleted by its own whiteouts)
  uint32_t layer_ = 0;                   // the open layer
  // Parent directory (as named) -> its resolution, until the links change:
  // entries come grouped by directory, so an image of 100,000 files resolves
  // a few thousand directories rather than every entry's path.
  std::unordered_map<std::string, std::string> dirs_;
};

}  // namespace lazyroot
