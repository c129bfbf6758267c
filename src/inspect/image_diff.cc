#include "src/inspect/image_diff.h"

#include <deque>
#include <future>
#include <map>

#include "index/path_resolve.h"
#include "src/store/open_image.h"
#include "src/store/index_consumer.h"
#include "src/image/manifest.h"

namespace lazyroot {
namespace {

std::string Join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

// The entries below directory `dir` (names: a hardlinked file counts once per name).
uint64_t CountBelow(const ImageTree& t, NodeId dir) {
  uint64_t n = 0;
  std::vector<NodeId> stack{dir};
  while (!stack.empty()) {
    NodeId d = stack.back();
    stack.pop_back();
    const uint32_t count = t.ChildCount(d);
    n += count;
    for (uint32_t i = 0; i < count; ++i) {
      NodeId c = t.ChildAt(d, i).node;
      if (t.IsDir(c)) stack.push_back(c);
    }
  }
  return n;
}

DiffSide SideOf(const ImageTree& t, NodeId id) {
  const Node n = t.GetNode(id);
  DiffSide s;
  s.type = n.type;
  s.mode = n.mode;
  s.uid = n.uid;
  s.gid = n.gid;
  s.nlink = n.nlink;
  s.size = n.size;
  s.mtime_sec = n.mtime_sec;
  s.mtime_nsec = n.mtime_nsec;
  s.rdev_major = n.rdev_major;
  s.rdev_minor = n.rdev_minor;
  s.link_target = std::string(n.symlink_target);
  s.layer = n.layer;
  if (n.IsDir()) s.entries = CountBelow(t, id);
  return s;
}

// The names of the xattrs added, removed or changed between two nodes.
std::vector<std::string> XattrChanges(const ImageTree& a, NodeId ia, const ImageTree& b, NodeId ib) {
  std::vector<std::string> out;
  const uint32_t na = a.XattrCount(ia), nb = b.XattrCount(ib);
  uint32_t i = 0, j = 0;
  while (i < na || j < nb) {
    if (j == nb || (i < na && a.XattrAt(ia, i).name < b.XattrAt(ib, j).name)) {
      out.emplace_back(a.XattrAt(ia, i++).name);
    } else if (i == na || b.XattrAt(ib, j).name < a.XattrAt(ia, i).name) {
      out.emplace_back(b.XattrAt(ib, j++).name);
    } else {
      Xattr x = a.XattrAt(ia, i++), y = b.XattrAt(ib, j++);
      if (x.value != y.value) out.emplace_back(x.name);
    }
  }
  return out;
}

// Compares the two nodes at one path; *change gets what differs.
Status Compare(const ImageTree& a, NodeId ia, const ImageTree& b, NodeId ib, const DiffOptions& options,
               const ContentEqualFn& content_equal, DiffChange* change) {
  const Node x = a.GetNode(ia), y = b.GetNode(ib);
  uint32_t what = 0;
  std::optional<Digest32> da, db;
  if (x.type != y.type) {
    what = kDiffType;
  } else {
    if (x.mode != y.mode) what |= kDiffMode;
    if (x.uid != y.uid || x.gid != y.gid) what |= kDiffOwner;
    if (x.type == NodeType::kSymlink && x.symlink_target != y.symlink_target) what |= kDiffTarget;
    if ((x.type == NodeType::kCharDevice || x.type == NodeType::kBlockDevice) &&
        (x.rdev_major != y.rdev_major || x.rdev_minor != y.rdev_minor)) {
      what |= kDiffDevice;
    }
    if (!x.IsDir() && x.nlink != y.nlink) what |= kDiffLinks;
    if (options.mtime && (x.mtime_sec != y.mtime_sec || x.mtime_nsec != y.mtime_nsec)) what |= kDiffMtime;
    if (x.xattr_count != 0 || y.xattr_count != 0) {
      change->xattr_names = XattrChanges(a, ia, b, ib);
      if (!change->xattr_names.empty()) what |= kDiffXattrs;
    }
    if (x.type == NodeType::kRegular) {
      if (x.size != y.size) {
        what |= kDiffSize | kDiffContent;
      } else if (x.size != 0) {
        LAZYROOT_ASSIGN_OR_RETURN(bool equal, content_equal(ia, ib, &da, &db));
        if (!equal) what |= kDiffContent;
      }
    }
  }
  change->what = what;
  if (what != 0) {
    change->kind = DiffKind::kModified;
    change->a = SideOf(a, ia);
    change->b = SideOf(b, ib);
    change->a->digest = da;
    change->b->digest = db;
  }
  return Status::Ok();
}

// One directory pair being walked: the next child of each to look at.
struct Frame {
  NodeId da, db;
  uint32_t i = 0, j = 0;
  std::string path;
};

}  // namespace

std::vector<std::string_view> DiffWhatNames(uint32_t what) {
  static constexpr std::string_view kNames[] = {"type",        "mode",   "owner", "size",   "content",
                                                "link target", "xattrs", "links", "device", "mtime"};
  std::vector<std::string_view> out;
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (what & (1u << i)) out.push_back(kNames[i]);
  }
  return out;
}

Result<std::vector<DiffChange>> DiffTrees(const ImageTree& a, NodeId ra, const ImageTree& b, NodeId rb,
                                          const std::string& path, const DiffOptions& options,
                                          const ContentEqualFn& content_equal) {
  std::vector<DiffChange> out;
  // The path is joined only for a change or a directory to descend into:
  // most pairs of a large tree are equal files.
  auto pair = [&](NodeId ia, NodeId ib, const std::string& dir, std::string_view name,
                  std::deque<Frame>* stack) -> Status {
    DiffChange c;
    LAZYROOT_RETURN_IF_ERROR(Compare(a, ia, b, ib, options, content_equal, &c));
    const bool descend = a.IsDir(ia) && b.IsDir(ib);
    if (c.what == 0 && !descend) return Status::Ok();
    std::string p = name.empty() ? dir : Join(dir, name);
    if (descend) stack->push_back(Frame{ia, ib, 0, 0, p});
    if (c.what != 0) {
      c.path = std::move(p);
      out.push_back(std::move(c));
    }
    return Status::Ok();
  };
  auto one_side = [&](DiffKind kind, const ImageTree& t, NodeId id, const std::string& p) {
    DiffChange c;
    c.path = p;
    c.kind = kind;
    (kind == DiffKind::kAdded ? c.b : c.a) = SideOf(t, id);
    out.push_back(std::move(c));
  };
  // A deque: pair() pushes while f (a reference into it) is in use.
  std::deque<Frame> stack;
  LAZYROOT_RETURN_IF_ERROR(pair(ra, rb, path, {}, &stack));
  while (!stack.empty()) {
    Frame& f = stack.back();
    const uint32_t na = a.ChildCount(f.da), nb = b.ChildCount(f.db);
    if (f.i == na && f.j == nb) {
      stack.pop_back();
      continue;
    }
    // Children are sorted bytewise on both sides: a merge join.
    std::optional<DirEntry> x, y;
    if (f.i < na) x = a.ChildAt(f.da, f.i);
    if (f.j < nb) y = b.ChildAt(f.db, f.j);
    if (x && (!y || x->name < y->name)) {
      ++f.i;
      one_side(DiffKind::kRemoved, a, x->node, Join(f.path, x->name));
    } else if (y && (!x || y->name < x->name)) {
      ++f.j;
      one_side(DiffKind::kAdded, b, y->node, Join(f.path, y->name));
    } else {
      ++f.i;
      ++f.j;
      LAZYROOT_RETURN_IF_ERROR(pair(x->node, y->node, f.path, x->name, &stack));
    }
  }
  return out;
}

namespace {

// The file digests of the layers of both images, each layer's index read
// once and only when a content comparison needs it.
class DigestCache {
 public:
  DigestCache(Store& store, const Limits& limits) : store_(store), limits_(limits) {}

  Result<Digest32> Of(const std::string& blob, const std::string& diff_id, uint64_t data_offset) {
    auto it = layers_.find(blob);
    if (it == layers_.end()) {
      auto digests = LoadLayerFileDigests(store_, blob, diff_id, limits_);
      if (!digests.ok()) return digests.status().WithContext("layer " + blob);
      it = layers_.emplace(blob, Layer{std::move(*digests), 0}).first;
    }
    // The walk meets files in name order, which is mostly tar order: try
    // the record after the last one found before searching.
    Layer& l = it->second;
    const FileDigest* d = nullptr;
    if (l.next < l.digests.size() && l.digests[l.next].data_offset == data_offset) {
      d = &l.digests[l.next];
    } else {
      d = FindFileDigest(l.digests, data_offset);
    }
    if (d != nullptr) l.next = static_cast<size_t>(d - l.digests.data()) + 1;
    if (d == nullptr) {
      return Status::Corruption("layer index of " + blob + " has no file digest for the data at offset " +
                                std::to_string(data_offset));
    }
    return d->digest;
  }

 private:
  struct Layer {
    std::vector<FileDigest> digests;
    size_t next = 0;  // after the last record found
  };
  Store& store_;
  const Limits& limits_;
  std::map<std::string, Layer> layers_;
};

// The node at `path` (parents' symlinks resolved in-root, the last
// component not followed) and its path with the parents resolved.
struct Found {
  std::optional<NodeId> node;
  std::string path;
};
Result<Found> FindNode(const ImageTree& tree, const std::vector<std::string>& components) {
  Found f;
  if (components.empty()) {
    f.node = ImageTree::kRoot;
    return f;
  }
  std::vector<std::string> parents(components.begin(), components.end() - 1);
  LAZYROOT_ASSIGN_OR_RETURN(auto parent, ResolveInRoot(tree, parents));
  std::optional<NodeId> dir = parent.nodes.empty() ? std::optional<NodeId>(ImageTree::kRoot) : parent.nodes.back();
  if (dir && tree.IsDir(*dir)) f.node = tree.Lookup(*dir, components.back());
  parent.components.push_back(components.back());
  f.path = JoinPath(parent.components);
  return f;
}

}  // namespace

Result<ImageDiff> DiffImages(Store& store, const ImageRecord& a, const ImageRecord& b, std::string_view path,
                             const DiffOptions& options, const Limits& limits) {
  OpenImageOptions open_options;
  open_options.limits = limits;
  open_options.tree_only = true;  // contents are compared by digest, never read
  // The two trees are read and validated at once (a 100,000-file tree is
  // ~10 MB to read and check); one manifest, one tree: not read twice.
  std::optional<std::future<Result<OpenedImage>>> later;
  if (b.manifest_digest != a.manifest_digest) {
    later = std::async(std::launch::async, [&] { return OpenImage(store, b, open_options); });
  }
  Result<OpenedImage> ra = OpenImage(store, a, open_options);
  Result<OpenedImage> rb = later ? later->get() : ra;
  LAZYROOT_RETURN_IF_ERROR(ra.status());
  LAZYROOT_RETURN_IF_ERROR(rb.status());
  OpenedImage ia = std::move(*ra), ib = std::move(*rb);
  const ImageTree& ta = *ia.tree;
  const ImageTree& tb = *ib.tree;
  std::vector<std::string> diff_ids_a, diff_ids_b;  // read when a digest is first needed

  const std::vector<std::string> components = CleanPathComponents(path);
  auto fa = FindNode(ta, components);
  if (!fa.ok()) return fa.status().WithContext("image " + a.reference);
  auto fb = FindNode(tb, components);
  if (!fb.ok()) return fb.status().WithContext("image " + b.reference);
  ImageDiff out;
  out.path = fa->node ? fa->path : fb->path;
  out.nodes_a = ta.node_count();
  out.nodes_b = tb.node_count();
  if (!fa->node && !fb->node) {
    return Status::NotFound("/" + JoinPath(components) + ": in neither " + a.reference + " nor " + b.reference);
  }
  if (!fa->node || !fb->node) {
    DiffChange c;
    c.path = out.path;
    c.kind = fa->node ? DiffKind::kRemoved : DiffKind::kAdded;
    (fa->node ? c.a : c.b) = fa->node ? SideOf(ta, *fa->node) : SideOf(tb, *fb->node);
    out.changes.push_back(std::move(c));
    return out;
  }

  DigestCache cache(store, limits);
  auto content_equal = [&](NodeId na, NodeId nb, std::optional<Digest32>* da,
                           std::optional<Digest32>* db) -> Result<bool> {
    const Node x = ta.GetNode(na), y = tb.GetNode(nb);
    const std::string_view layer_x = ta.LayerDigest(x.layer), layer_y = tb.LayerDigest(y.layer);
    // The same bytes of the same blob: one tar entry, so the same sparse map too.
    if (layer_x == layer_y && x.data_offset == y.data_offset) return true;
    // A sparse file's digest covers its map and stored bytes; a plain one
    // its content. The two are not comparable: counted as changed.
    if ((x.sparse_count != 0) != (y.sparse_count != 0)) return false;
    if (diff_ids_a.empty()) {
      LAZYROOT_ASSIGN_OR_RETURN(diff_ids_a, ImageDiffIds(store, a));
      LAZYROOT_ASSIGN_OR_RETURN(diff_ids_b, ImageDiffIds(store, b));
    }
    if (x.layer >= diff_ids_a.size() || y.layer >= diff_ids_b.size()) {
      return Status::Corruption("a tree names a layer its image does not have");
    }
    LAZYROOT_ASSIGN_OR_RETURN(Digest32 dx, cache.Of(std::string(layer_x), diff_ids_a[x.layer], x.data_offset));
    LAZYROOT_ASSIGN_OR_RETURN(Digest32 dy, cache.Of(std::string(layer_y), diff_ids_b[y.layer], y.data_offset));
    *da = dx;
    *db = dy;
    return dx == dy;
  };
  LAZYROOT_ASSIGN_OR_RETURN(out.changes, DiffTrees(ta, *fa->node, tb, *fb->node, out.path, options, content_equal));
  return out;
}

}  // namespace lazyroot
