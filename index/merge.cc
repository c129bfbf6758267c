// The merge: how the layers of an image become one tree.
//
// An OCI image is a stack of changesets. The image-spec (layer.md) says how
// to apply one:
//
//   "Layer Changesets … are _applied_, rather than simply extracted as tar
//    archives. … In the absence of any whiteout files in a layer changeset,
//    the archive is extracted like a regular tar archive."
//
//   "If the entry and the existing path are both directories, then the
//    existing path's attributes MUST be replaced by those of the entry in the
//    changeset. In all other cases, the implementation MUST do the semantic
//    equivalent of … removing the file path (e.g. unlink(2) …) [and]
//    recreating the file path, based on the contents and attributes of the
//    changeset entry."
//
//   "A whiteout filename consists of the prefix `.wh.` plus the basename of
//    the path to be deleted. … Once a whiteout is applied, the whiteout itself
//    MUST also be hidden. Whiteout files MUST only apply to resources in
//    lower/parent layers. Files that are present in the same layer as a
//    whiteout file can only be hidden by whiteout files in subsequent layers."
//
//   "An opaque whiteout entry is a file with the name `.wh..wh..opq`
//    indicating that all siblings are hidden in the lower layer. … `a/.wh..wh..opq`
//    is applied first, before creating the new version of `a/b`, regardless
//    of the ordering in which the whiteout file was encountered."
//
//   "Hardlinks are possible with all file types except directories."
//
// The spec leaves the rest open (names with "..", symlinks in parent paths,
// implicit parents, duplicates, the root entry). We do what umoci 0.4.7 does
// (oci/layer/tar_extract.go, UnpackEntry), because that is the oracle the
// integration tests diff against, and what it does is the safe choice. For
// each layer in order, for each entry in tar order:
//
//  1. Name. The path is cleaned lexically: leading "/" and "./" dropped, "//"
//     and "." collapsed, ".." clamped at the root ("../../evil" is "evil").
//     An entry naming the root (".", "./", "/") must be a directory - the
//     CVE-2021-29136 fix - and only sets the root's attributes. Without one
//     the root is 0755 0:0 with mtime 0.
//  2. Parent. Everything but the last component is resolved through the tree
//     as it is *now*, with chroot semantics (path_resolve.h): symlinks are
//     followed, absolute targets restart at the root, ".." stops at the
//     root, more than 255 expansions is an error. So `lib -> usr/lib` then
//     `lib/x` lands in usr/lib/x, and nothing ever lands outside the tree.
//     Resolutions are memoised (a parent path, and the expansion of a
//     symlink seen from its directory) and the memos dropped whenever a
//     directory or symlink goes or a symlink comes, so a chain of long symlinks is walked once per image, not
//     once per entry below it; the components walked count against
//     Limits::symlink_steps for the whole image. A parent resolving to more
//     than PATH_MAX bytes is an error (the kernel could not create it).
//     The last component is never followed: an entry replaces a symlink, it
//     does not write through it.
//  3. Whiteouts (basename ".wh.X"; the entry's type, size and mode do not
//     matter). ".wh." and ".wh..", ".wh..." name nothing and are errors.
//     ".wh..wh..opq" removes every child of the parent directory; ".wh.X"
//     removes child X itself (a symlink, never its target). Either way a path
//     this layer created, or an ancestor of one, is spared: the removal walks
//     down into it and removes only what lower layers put there ("upper"
//     paths, umoci's upperPaths). That is how "applied first, regardless of
//     ordering" and "only apply to lower layers" are both honoured in one
//     pass. A missing parent or target is a no-op that creates nothing.
//     Other ".wh..wh.*" names (AUFS ".wh..wh.plnk", ".wh..wh.aufs") get the
//     same rule as umoci gives them: they white out ".wh.plnk", ".wh.aufs",
//     which cannot exist, so the marker just vanishes; files *below* such a
//     directory (".wh..wh.plnk/123.456") are ordinary entries under an
//     implicit directory, as in umoci and containerd.
//  4. Anything else. Missing parents are created as implicit directories
//     (0755, 0:0, mtime 0 - umoci uses the wall clock, we stay
//     deterministic). A parent that exists but is not a directory is an
//     error, as in umoci 0.4.7, containerd and moby (umoci >= 0.5 would
//     replace it). An existing entry at the name is unlinked and the new one
//     created, unless both are directories: then the directory keeps its
//     children and takes the entry's mode, owner, mtime and *entire* xattr
//     set. A directory's mtime is that of its own latest entry; adding
//     children never touches it (umoci restores the parent after each
//     child; we simply never change it).
//  5. Hardlinks. The target is cleaned, its dirname resolved as in 2, its
//     last component kept (a link to a symlink links the symlink). The
//     target must exist now - forward references are errors - and must not
//     be a directory. The new name aliases the target's *node*: content,
//     mode, owner, xattrs, mtime are shared and the link header's own
//     metadata is ignored. nlink counts names; replacing or whiting out one
//     name decrements it. As in umoci, an existing entry at the link's own
//     name is removed before the target is looked up.
//  6. The entry's resolved path and its ancestors become "upper" for the
//     rest of this layer. Whiteouts are not recorded.
//
// Duplicates in one layer: the last one wins (rule 4). Ordering within a
// layer matters where umoci says it does: ".wh.a" after "a/new" keeps the
// lower "a" directory's attributes (a is an ancestor of an upper path),
// before it "a" is removed and recreated implicitly; a hardlink to a lower
// file survives an opaque marker that follows it, but errors if it follows
// the marker.
//
// Representation. Nodes live in a vector and are referred to by index;
// directories map names to dirents {node, upper stamp}. "Upper" is a stamp on
// the dirent (not on the node: a lower file hardlinked by this layer is upper
// under its new name only), compared with a counter bumped per layer, so
// forgetting the upper set at the end of a layer costs nothing. Unlinked
// nodes are cleared and their slots reused, so an image that rewrites the
// same paths many times stays linear in its live size. Finish numbers the
// live nodes breadth-first from the root and hands them to ImageTreeWriter.

#include "index/merge.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "index/limits.h"
#include "index/path_resolve.h"

namespace lazyroot {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";
constexpr uint32_t kNoNode = std::numeric_limits<uint32_t>::max();
// What the resolution memos may hold (bytes, roughly) before they are
// dropped and rebuilt: far above a real image's few thousand directories.
constexpr uint64_t kMaxMemoBytes = uint64_t{32} << 20;

std::string Quote(std::string_view s) {
  std::string q = "\"";
  q.append(s);
  q += '"';
  return q;
}

}  // namespace

class TreeBuilder::Impl {
 public:
  Impl(const Limits& limits, MergeMode mode) : limits_(limits), literal_(mode == MergeMode::kLiteral) {
    nodes_.push_back(ImplicitDir(0));
  }

  Status BeginLayer(uint32_t layer_index, std::string_view digest);
  Status Apply(const TarEntry& e);
  Status EndLayer();
  Result<ImageTree> Finish(std::string name);
  // Non-const only because Freeze is shared with Finish: consume = false changes nothing.
  Result<ImageTree> Snapshot(std::string name);
  void SetImageDigest(std::string digest) { image_digest_ = std::move(digest); }

  size_t allocated_nodes() const { return nodes_.size(); }
  uint64_t symlink_steps() const { return steps_; }
  uint64_t parent_steps() const { return parent_steps_; }
  Status Fail(Status st) {
    error_ = st;
    return st;
  }

  // ResolveInRoot's view of the growing tree.
  NodeId Root() const { return 0; }
  bool IsDir(NodeId n) const { return nodes_[n].type == NodeType::kDirectory; }
  bool IsSymlink(NodeId n) const { return nodes_[n].type == NodeType::kSymlink; }
  std::string_view SymlinkTarget(NodeId n) const { return nodes_[n].symlink_target; }
  std::optional<NodeId> Child(NodeId dir, std::string_view name) const {
    auto it = nodes_[dir].children.find(name);
    if (it == nodes_[dir].children.end()) return std::nullopt;
    return it->second.node;
  }

 private:
  struct Dirent {
    NodeId node = 0;
    uint64_t upper = 0;  // == stamp_ while the current layer created this name or something below it
  };
  using Children = std::map<std::string, Dirent, std::less<>>;
  struct BuildNode {
    NodeType type = NodeType::kDirectory;
    uint32_t mode = 0, uid = 0, gid = 0;
    int64_t mtime_sec = 0;
    uint32_t mtime_nsec = 0;
    uint32_t names = 0;  // dirents naming this node
    uint64_t size = 0;
    uint32_t layer = 0;
    uint32_t rdev_major = 0, rdev_minor = 0;
    uint64_t data_offset = 0, stored_size = 0;
    uint64_t swept = 0;  // == stamp_ once SweepLower went through it in the open layer
    std::string symlink_target;
    std::vector<SparseExtent> sparse;
    std::vector<std::pair<std::string, std::string>> xattrs;
    Children children;
  };

  static BuildNode ImplicitDir(uint32_t layer) {
    BuildNode n;
    n.type = NodeType::kDirectory;
    n.mode = 0755;
    n.names = 1;
    n.layer = layer;
    return n;
  }

  std::string EntryName(const TarEntry& e) const {
    // Counted from 1 at the base, as every command shows layers.
    std::string layer = "layer " + std::to_string(uint64_t{layer_} + 1);
    if (layer_ < layer_digests_.size() && !layer_digests_[layer_].empty()) layer += " (" + layer_digests_[layer_] + ")";
    return layer + ": entry " + Quote(e.path);
  }
  Status EntryError(const TarEntry& e, std::string_view what) const {
    return Status::Corruption(EntryName(e) + ": " + std::string(what));
  }
  // An image over a budget of index/limits.h: names the entry, the limit and
  // how to raise it (kernel limits cannot be raised: pass an empty flag).
  Status LimitError(const TarEntry& e, std::string_view what, std::string_view flag, uint64_t limit) const {
    std::string m = EntryName(e) + " (tar offset " + std::to_string(e.header_offset) + "): " + std::string(what);
    if (!flag.empty()) {
      m += " (limit " + std::string(flag) + "=" + std::to_string(limit) + "; raise with --limit " + std::string(flag) +
           "=N or LAZYROOT_LIMITS)";
    }
    return Status::LimitExceeded(std::move(m));
  }
  NodeId NewNode(BuildNode n);
  void SetAttributes(BuildNode& n, const TarEntry& e) const;
  Status CheckEntry(const TarEntry& e) const;
  Status ChargeBudgets(const TarEntry& e);
  // The result points into a memo or walk_scratch_: valid until the next Walk or removal.
  Result<const ResolvedPath<NodeId>*> Walk(const TarEntry& e, const std::vector<std::string>& components);
  void ForgetResolutions();
  // Memos hold only walks that end at a directory (see Release).
  bool EndsInDirectory(const ResolvedPath<NodeId>& p) const {
    return p.nodes.empty() || (p.nodes.back() && IsDir(*p.nodes.back()));
  }
  Result<BuildNode> NodeFromEntry(const TarEntry& e) const;
  // Finish's numbering and writing; consume frees the builder's maps as it goes.
  Result<ImageTree> Freeze(std::string name, bool consume);
  Status ApplyWhiteout(const TarEntry& e, std::optional<NodeId> parent, std::string_view name);
  Result<NodeId> HardlinkTarget(const TarEntry& e);
  Status ApplyHardlink(const TarEntry& e, NodeId dir, const std::string& name);
  Result<NodeId> MakeParents(const TarEntry& e, const ResolvedPath<NodeId>& parent);
  void Unlink(NodeId dir, Children::iterator it);
  void Release(NodeId node);
  void SweepLower(NodeId dir);

  std::vector<BuildNode> nodes_;  // node 0 is the root
  std::vector<NodeId> free_;      // released slots, reused by NewNode
  std::vector<std::string> layer_digests_;
  std::string image_digest_;
  bool in_layer_ = false;
  bool finished_ = false;
  uint32_t layer_ = 0;
  uint64_t stamp_ = 0;  // identifies the open layer in Dirent::upper
  Status error_;

  // Budgets (index/limits.h) and what has been spent of them.
  Limits limits_;
  bool literal_ = false;  // MergeMode::kLiteral
  uint64_t entries_ = 0, metadata_ = 0;
  uint64_t steps_ = 0;  // path components walked by Walk, over the whole image
  uint64_t parent_steps_ = 0;  // dirents MakeParents marked or created
  ResolvedPath<NodeId> walk_scratch_;  // Walk's result when it is not memoised

  // Memoised resolution (see Walk). Both memos only hold walks in which
  // every lookup found its name and that end at a directory, so adding names
  // cannot change them (but for a symlink where a file was: "f/.."); losing
  // a directory or symlink, or gaining a symlink, drops them
  // (ForgetResolutions from Release, Apply and ApplyHardlink).
  struct LinkMemo {
    ResolvedPath<NodeId> after;  // the walk's state once the link's target was walked
    size_t bytes = 0;            // JoinPath(after.components).size() + 1 per component
    int hops = 0;                // symlinks expanded on the way, this one included
  };
  std::unordered_map<std::string, ResolvedPath<NodeId>> parent_memo_;  // cleaned path -> resolution
  std::unordered_map<uint64_t, LinkMemo> link_memo_;                     // dir << 32 | link -> expansion
  uint64_t memo_bytes_ = 0;
};

NodeId TreeBuilder::Impl::NewNode(BuildNode n) {
  if (!free_.empty()) {
    NodeId id = free_.back();
    free_.pop_back();
    nodes_[id] = std::move(n);
    return id;
  }
  nodes_.push_back(std::move(n));
  return static_cast<NodeId>(nodes_.size() - 1);
}

// Drops one name of `node`; frees it (and, for a directory, everything below
// it) when no name is left. Iterative: layers can nest arbitrarily deep.
void TreeBuilder::Impl::Release(NodeId node) {
  // A name goes away. Memoised walks go through directories and symlinks
  // and end at directories; a file, device or fifo they found can only have
  // been popped again by "..", which gives the same result when it is
  // missing. So only losing a directory or a symlink can change them.
  if (IsDir(node) || IsSymlink(node)) ForgetResolutions();
  std::vector<NodeId> stack{node};
  while (!stack.empty()) {
    NodeId n = stack.back();
    stack.pop_back();
    BuildNode& b = nodes_[n];
    if (--b.names > 0) continue;
    for (auto& [name, d] : b.children) stack.push_back(d.node);
    b = BuildNode{};  // gives back strings, maps and vectors now
    b.type = NodeType::kFifo;
    free_.push_back(n);
  }
}

void TreeBuilder::Impl::Unlink(NodeId dir, Children::iterator it) {
  NodeId n = it->second.node;
  nodes_[dir].children.erase(it);
  Release(n);
}

// Removes everything below `dir` that the open layer did not create, keeping
// upper names and walking into upper directories (umoci's whiteout walk).
// A directory swept in the open layer holds nothing lower until the layer
// ends (everything the layer adds is upper, and no lower directory can be
// moved under it), so it is not walked again: a layer of N files and N
// opaque markers (or whiteouts of an upper directory) of their directory,
// or of its ancestors, costs N steps, not N^2.
void TreeBuilder::Impl::SweepLower(NodeId dir) {
  std::vector<NodeId> stack{dir};
  while (!stack.empty()) {
    NodeId d = stack.back();
    stack.pop_back();
    if (nodes_[d].swept == stamp_) continue;
    nodes_[d].swept = stamp_;
    Children& children = nodes_[d].children;
    for (auto it = children.begin(); it != children.end();) {
      if (it->second.upper != stamp_) {
        NodeId n = it->second.node;
        it = children.erase(it);
        Release(n);
      } else {
        if (IsDir(it->second.node)) stack.push_back(it->second.node);
        ++it;
      }
    }
  }
}

void TreeBuilder::Impl::ForgetResolutions() {
  // Swapped with empty maps rather than clear()ed: clear() costs the bucket
  // count, which stays at its peak, on every removal.
  if (!parent_memo_.empty()) std::unordered_map<std::string, ResolvedPath<NodeId>>().swap(parent_memo_);
  if (!link_memo_.empty()) std::unordered_map<uint64_t, LinkMemo>().swap(link_memo_);
  memo_bytes_ = 0;
}

// Rule 2 with bounded work: ResolveInRoot's walk (path_resolve.h), same
// result, plus two memos and a budget.
//  - parent_memo_: the cleaned path -> its resolution. Siblings share their
//    parent, so most entries cost one hash lookup.
//  - link_memo_: (directory, symlink in it) -> the walk's state once the
//    symlink's target has been walked. When every lookup on the way succeeded
//    the stack of found directories is the directory's real path, so the
//    state depends on the pair alone. A chain of long symlinks is expanded
//    once for the whole image, not once per entry or directory below it.
// Every component taken off the work stack is one step of
// limits_.symlink_steps, summed over the image. A resolved path (at any point
// of the walk) longer than PATH_MAX could not be created by the kernel and is
// refused, which also bounds every memoised state to 4 KiB of names.
// InvalidArgument on a symlink loop (as ResolveInRoot), LimitExceeded over
// a limit.
Result<const ResolvedPath<NodeId>*> TreeBuilder::Impl::Walk(const TarEntry& e,
                                                             const std::vector<std::string>& components) {
  std::string key = JoinPath(components);
  if (auto it = parent_memo_.find(key); it != parent_memo_.end()) return &it->second;

  ResolvedPath<NodeId> out;
  size_t out_bytes = 0;
  std::vector<std::string> pending(components.rbegin(), components.rend());
  struct Expansion {
    NodeId dir, link;
    size_t base;  // pending.size() before the target was pushed: done when it is back there
    int hops_before;
    bool clean = true;
  };
  std::vector<Expansion> open;
  bool clean = true;
  int hops = 0;
  auto remember = [&](uint64_t memo_key, const Expansion& x) {
    uint64_t cost = out_bytes + 48 * out.components.size() + 64;
    if (memo_bytes_ + cost > kMaxMemoBytes) ForgetResolutions();
    memo_bytes_ += cost;
    link_memo_[memo_key] = LinkMemo{out, out_bytes, hops - x.hops_before};
  };
  while (!pending.empty()) {
    if (++steps_ > limits_.symlink_steps) {
      return LimitError(e, "resolving symlinked parents walked more than " + std::to_string(limits_.symlink_steps) +
                               " path components in this image",
                        "symlink-steps", limits_.symlink_steps);
    }
    std::string name = std::move(pending.back());
    pending.pop_back();
    if (name.empty() || name == ".") {
      // nothing to walk
    } else if (name == "..") {
      if (!out.components.empty()) {
        out_bytes -= out.components.back().size() + 1;
        out.components.pop_back();
        out.nodes.pop_back();
      }
    } else {
      std::optional<NodeId> parent = out.nodes.empty() ? std::optional<NodeId>(Root()) : out.nodes.back();
      std::optional<NodeId> child;
      if (parent && IsDir(*parent)) child = Child(*parent, name);
      if (!child) {
        // A missing name may be created later: nothing open is memoisable.
        clean = false;
        for (Expansion& x : open) x.clean = false;
      }
      if (child && IsSymlink(*child)) {
        uint64_t memo_key = uint64_t{*parent} << 32 | *child;
        if (auto m = link_memo_.find(memo_key); m != link_memo_.end()) {
          hops += m->second.hops;
          if (hops > kMaxSymlinkHops) return Status::InvalidArgument("too many levels of symbolic links");
          out = m->second.after;
          out_bytes = m->second.bytes;
        } else {
          if (++hops > kMaxSymlinkHops) return Status::InvalidArgument("too many levels of symbolic links");
          open.push_back(Expansion{*parent, *child, pending.size(), hops - 1});
          std::string_view target = SymlinkTarget(*child);
          if (!target.empty() && target.front() == '/') {
            out.components.clear();
            out.nodes.clear();
            out_bytes = 0;
          }
          // Push the target's components so that its first one is walked next.
          size_t end = target.size();
          while (end > 0) {
            size_t slash = target.rfind('/', end - 1);
            size_t begin = slash == std::string_view::npos ? 0 : slash + 1;
            if (end > begin) pending.emplace_back(target.substr(begin, end - begin));
            if (slash == std::string_view::npos) break;
            end = slash;
          }
        }
      } else {
        out_bytes += name.size() + 1;
        out.components.push_back(std::move(name));
        out.nodes.push_back(child);
        if (out_bytes > Limits::kMaxPath + 1) {
          return LimitError(e, "path too long: a parent resolves to more than the kernel's " +
                                   std::to_string(Limits::kMaxPath) + " bytes", "", 0);
        }
      }
    }
    // Expansions whose targets have been walked, innermost first.
    while (!open.empty() && pending.size() == open.back().base) {
      Expansion x = open.back();
      open.pop_back();
      if (x.clean && EndsInDirectory(out)) remember(uint64_t{x.dir} << 32 | x.link, x);
    }
  }
  if (clean && EndsInDirectory(out)) {
    uint64_t cost = key.size() + out_bytes + 48 * out.components.size() + 64;
    if (memo_bytes_ + cost > kMaxMemoBytes) ForgetResolutions();
    memo_bytes_ += cost;
    return &parent_memo_.emplace(std::move(key), std::move(out)).first->second;
  }
  walk_scratch_ = std::move(out);
  return &walk_scratch_;
}

// The image budgets: every entry applied counts, also ones a later entry
// replaces, since each cost its share of work and memory on the way.
Status TreeBuilder::Impl::ChargeBudgets(const TarEntry& e) {
  ++entries_;
  metadata_ += MetadataBytes(e);
  Status st = CheckBudget(limits_, "image", entries_, metadata_);
  if (st.ok()) return st;
  return LimitError(e, st.message(), "", 0);
}

Status TreeBuilder::Impl::BeginLayer(uint32_t layer_index, std::string_view digest) {
  if (!error_.ok()) return error_;
  if (finished_) return Fail(Status::InvalidArgument("tree builder: BeginLayer after Finish"));
  if (in_layer_) return Fail(Status::InvalidArgument("tree builder: layer " + std::to_string(layer_) + " still open"));
  const bool first_literal = literal_ && layer_digests_.empty() && layer_index < limits_.image_layers;
  if (layer_index != layer_digests_.size() && !first_literal) {
    return Fail(Status::InvalidArgument("tree builder: layer " + std::to_string(layer_index) +
                                        " out of order, expected " + std::to_string(layer_digests_.size())));
  }
  if (first_literal) {
    layer_digests_.resize(layer_index);  // the layers below are not applied: no digest
    nodes_[0].layer = layer_index;       // the implied root is this layer's
  }
  layer_digests_.emplace_back(digest);
  layer_ = layer_index;
  in_layer_ = true;
  ++stamp_;
  return Status::Ok();
}

Status TreeBuilder::Impl::EndLayer() {
  if (!error_.ok()) return error_;
  if (!in_layer_) return Fail(Status::InvalidArgument("tree builder: EndLayer without BeginLayer"));
  in_layer_ = false;
  return Status::Ok();
}

void TreeBuilder::Impl::SetAttributes(BuildNode& n, const TarEntry& e) const {
  n.mode = e.mode & 07777;
  n.uid = e.uid;
  n.gid = e.gid;
  n.mtime_sec = e.mtime_sec;
  n.mtime_nsec = e.mtime_nsec;
  n.layer = layer_;
  n.xattrs = e.xattrs;
  // The tar reader hands them sorted; be certain, and let the last of two
  // equal names win as PAX records do.
  std::stable_sort(n.xattrs.begin(), n.xattrs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  auto last =
      std::unique(n.xattrs.rbegin(), n.xattrs.rend(), [](const auto& a, const auto& b) { return a.first == b.first; });
  n.xattrs.erase(n.xattrs.begin(), last.base());
}

Status TreeBuilder::Impl::CheckEntry(const TarEntry& e) const {
  if (e.path.find('\0') != std::string::npos) return EntryError(e, "NUL byte in the name");
  if (e.mtime_nsec >= 1000000000u) return EntryError(e, "mtime nanoseconds out of range");
  // The kernel's limits (index/limits.h): the indexer refuses entries over
  // them; checked again because a tree must never hold what no file system
  // could (ImageTree's validation rejects it).
  for (const std::string& c : CleanPathComponents(e.path)) {
    // A whiteout's name is its target's plus ".wh.": 4 bytes of slack,
    // unless it is to be a file of its own (literal mode).
    size_t max = Limits::kMaxComponent + (!literal_ && c.starts_with(kWhiteoutPrefix) ? kWhiteoutPrefix.size() : 0);
    if (c.size() > max) {
      return LimitError(e, "name too long: a component of " + std::to_string(c.size()) + " bytes, over the kernel's " +
                               std::to_string(Limits::kMaxComponent), "", 0);
    }
  }
  if (e.type == EntryType::kSymlink) {
    if (e.link_target.size() > Limits::kMaxSymlinkTarget) {
      return LimitError(e, "symlink target too long: " + std::to_string(e.link_target.size()) +
                               " bytes, over the kernel's " + std::to_string(Limits::kMaxSymlinkTarget), "", 0);
    }
    if (e.link_target.find('\0') != std::string::npos) return EntryError(e, "NUL byte in the symlink target");
  }
  size_t xattr_bytes = 0;
  for (const auto& [name, value] : e.xattrs) {
    if (name.empty()) return EntryError(e, "xattr with an empty name");
    if (name.size() > Limits::kMaxXattrName || value.size() > Limits::kMaxXattrValue) {
      return LimitError(e, "xattr " + name.substr(0, 64) + " over the kernel's name or value size", "", 0);
    }
    xattr_bytes += name.size() + value.size();
  }
  if (xattr_bytes > Limits::kMaxXattrsPerEntry) {
    return LimitError(e, "xattrs of " + std::to_string(xattr_bytes) + " bytes, over the kernel's " +
                             std::to_string(Limits::kMaxXattrsPerEntry) + " per file", "", 0);
  }
  if (e.type != EntryType::kRegular) return Status::Ok();
  if (e.sparse.empty()) {
    if (e.stored_size != e.size) return EntryError(e, "stored size differs from size without a sparse map");
    return Status::Ok();
  }
  uint64_t end = 0, total = 0;
  for (const SparseExtent& x : e.sparse) {
    if (x.logical_offset < end || x.length > e.size || x.logical_offset > e.size - x.length) {
      return EntryError(e, "sparse map out of order or beyond the file size");
    }
    end = x.logical_offset + x.length;
    total += x.length;
  }
  if (total != e.stored_size) return EntryError(e, "sparse map does not add up to the stored size");
  return Status::Ok();
}

Result<TreeBuilder::Impl::BuildNode> TreeBuilder::Impl::NodeFromEntry(const TarEntry& e) const {
  BuildNode n;
  n.names = 1;
  SetAttributes(n, e);
  switch (e.type) {
    case EntryType::kRegular:
      n.type = NodeType::kRegular;
      n.size = e.size;
      n.data_offset = e.data_offset;
      n.stored_size = e.stored_size;
      n.sparse = e.sparse;
      break;
    case EntryType::kDirectory:
      n.type = NodeType::kDirectory;
      break;
    case EntryType::kSymlink:
      n.type = NodeType::kSymlink;
      n.symlink_target = e.link_target;
      n.size = e.link_target.size();
      break;
    case EntryType::kCharDevice:
    case EntryType::kBlockDevice:
      n.type = e.type == EntryType::kCharDevice ? NodeType::kCharDevice : NodeType::kBlockDevice;
      n.rdev_major = e.dev_major;
      n.rdev_minor = e.dev_minor;
      break;
    case EntryType::kFifo:
      n.type = NodeType::kFifo;
      break;
    case EntryType::kHardlink:
      return EntryError(e, "internal: hardlink has no node of its own");
  }
  return n;
}

// Rule 4: creates the missing directories of an already resolved parent path
// and marks the whole chain upper. Returns the parent directory.
// Work proportional to what changes, not to the depth (a short entry path
// can resolve, through a symlink, to a directory thousands of levels down):
//  - the found levels are a prefix (below a missing one nothing is looked
//    up), and every one but the last is a directory (only directories are
//    looked into), so only the last found one needs checking;
//  - within a layer the upper dirents are closed under ancestors (a chain is
//    always marked from the root down, removals take whole subtrees), so
//    marking bottom-up stops at the first dirent already upper.
Result<NodeId> TreeBuilder::Impl::MakeParents(const TarEntry& e, const ResolvedPath<NodeId>& parent) {
  const size_t n = parent.components.size();
  size_t found = n;
  while (found > 0 && !parent.nodes[found - 1]) --found;
  if (found > 0 && !IsDir(*parent.nodes[found - 1])) {
    return EntryError(e, "parent " + Quote(JoinPath(parent.components, found)) + " is not a directory");
  }
  for (size_t i = found; i-- > 0;) {
    ++parent_steps_;
    NodeId up = i == 0 ? Root() : *parent.nodes[i - 1];
    auto it = nodes_[up].children.find(parent.components[i]);
    if (it->second.upper == stamp_) break;
    it->second.upper = stamp_;
  }
  NodeId dir = found == 0 ? Root() : *parent.nodes[found - 1];
  uint64_t path_bytes = found == 0 ? 0 : found - 1;  // of components[0..i), as an entry's path counts
  for (size_t i = 0; i < found; ++i) path_bytes += parent.components[i].size();
  for (size_t i = found; i < n; ++i) {
    ++parent_steps_;
    // An implied directory costs a node and its path (extract keeps and
    // opens every directory's path) like an entry does: counted, or one 4 KB
    // path of 2000 one-letter components makes 2000 nodes and 4 MB of paths
    // for one entry of the budgets (a 37 KB layer made 2M nodes, ~1 GB in
    // the merge; 20 such entries took extract 144 s).
    path_bytes += parent.components[i].size() + (i ? 1 : 0);
    ++entries_;
    metadata_ += path_bytes;
    if (Status st = CheckBudget(limits_, "image", entries_, metadata_); !st.ok()) {
      return LimitError(e, st.message() + "; directories implied by paths count, with their paths", "", 0);
    }
    NodeId made = NewNode(ImplicitDir(layer_));
    nodes_[dir].children.emplace(parent.components[i], Dirent{made, stamp_});
    dir = made;
  }
  return dir;
}

Status TreeBuilder::Impl::ApplyWhiteout(const TarEntry& e, std::optional<NodeId> parent, std::string_view name) {
  std::string_view target = name.substr(kWhiteoutPrefix.size());
  if (target.empty() || target == "." || target == "..") {
    return EntryError(e, "whiteout " + Quote(name) + " names no file");
  }
  if (!parent || !IsDir(*parent)) return Status::Ok();  // nothing there to hide
  if (name == kOpaqueWhiteout) {
    SweepLower(*parent);
    return Status::Ok();
  }
  Children& children = nodes_[*parent].children;
  auto it = children.find(target);
  if (it == children.end()) return Status::Ok();
  if (it->second.upper != stamp_) {
    Unlink(*parent, it);
  } else if (IsDir(it->second.node)) {
    SweepLower(it->second.node);
  }
  return Status::Ok();
}

Result<NodeId> TreeBuilder::Impl::HardlinkTarget(const TarEntry& e) {
  std::vector<std::string> target = CleanPathComponents(e.link_target);
  if (target.empty()) return EntryError(e, "hardlink target " + Quote(e.link_target) + " is a directory");
  std::string last = std::move(target.back());
  target.pop_back();
  auto walked = Walk(e, target);
  if (!walked.ok()) {
    if (walked.status().code() == ErrorCode::kLimitExceeded) return walked.status();
    return EntryError(e, "hardlink target " + Quote(e.link_target) + ": " + walked.status().message());
  }
  const ResolvedPath<NodeId>& resolved = **walked;
  std::optional<NodeId> tdir = resolved.nodes.empty() ? std::optional<NodeId>(0) : resolved.nodes.back();
  std::optional<NodeId> t;
  if (tdir && IsDir(*tdir)) t = Child(*tdir, last);
  if (!t) return EntryError(e, "hardlink target " + Quote(e.link_target) + " does not exist");
  if (IsDir(*t)) return EntryError(e, "hardlink target " + Quote(e.link_target) + " is a directory");
  return *t;
}

Status TreeBuilder::Impl::ApplyHardlink(const TarEntry& e, NodeId dir, const std::string& name) {
  LAZYROOT_ASSIGN_OR_RETURN(NodeId t, HardlinkTarget(e));
  ++nodes_[t].names;
  // A symlink where a memoised walk found a file it popped with ".." ("f/..")
  // would now be expanded.
  if (IsSymlink(t)) ForgetResolutions();
  nodes_[dir].children.insert_or_assign(name, Dirent{t, stamp_});
  return Status::Ok();
}

Status TreeBuilder::Impl::Apply(const TarEntry& e) {
  if (!error_.ok()) return error_;
  if (!in_layer_) return Fail(Status::InvalidArgument("tree builder: Apply outside a layer"));
  if (Status st = CheckEntry(e); !st.ok()) return Fail(st);
  if (Status st = ChargeBudgets(e); !st.ok()) return Fail(st);

  std::vector<std::string> components = CleanPathComponents(e.path);
  if (components.empty()) {  // rule 1: the root entry
    if (e.type != EntryType::kDirectory) {
      return Fail(EntryError(e, "refusing to change the type of the root directory"));
    }
    SetAttributes(nodes_[0], e);
    return Status::Ok();
  }
  std::string name = std::move(components.back());
  components.pop_back();

  auto parent = Walk(e, components);  // rule 2
  if (!parent.ok()) {
    if (parent.status().code() == ErrorCode::kLimitExceeded) return Fail(parent.status());
    return Fail(EntryError(e, "parent: " + parent.status().message()));
  }

  if (!literal_ && name.starts_with(kWhiteoutPrefix)) {  // rule 3
    std::optional<NodeId> dir = (*parent)->nodes.empty() ? std::optional<NodeId>(0) : (*parent)->nodes.back();
    Status st = ApplyWhiteout(e, dir, name);
    return st.ok() ? st : Fail(st);
  }

  auto dir = MakeParents(e, **parent);  // rule 4
  if (!dir.ok()) return Fail(dir.status());
  Children& children = nodes_[*dir].children;
  auto it = children.find(name);
  if (e.type == EntryType::kHardlink) {  // rule 5
    if (literal_) {
      // tar -x fails this entry alone (a target of a lower layer, a
      // directory) and goes on; budgets still stop the whole view.
      auto target = HardlinkTarget(e);
      if (!target.ok() && target.status().code() != ErrorCode::kLimitExceeded) return Status::Ok();
      if (!target.ok()) return Fail(target.status());
    }
    if (it != children.end()) {
      // A link to itself (GNU tar writes one when a file is archived twice)
      // keeps the file; anything else replaces what the name held.
      auto target = HardlinkTarget(e);
      if (target.ok() && *target == it->second.node) {
        it->second.upper = stamp_;
        return Status::Ok();
      }
      Unlink(*dir, it);
    }
    Status st = ApplyHardlink(e, *dir, name);
    return st.ok() ? st : Fail(st);
  }
  if (it != children.end() && e.type == EntryType::kDirectory && IsDir(it->second.node)) {
    SetAttributes(nodes_[it->second.node], e);
    it->second.upper = stamp_;  // rule 6
    return Status::Ok();
  }
  auto node = NodeFromEntry(e);
  if (!node.ok()) return Fail(node.status());
  if (it != children.end()) Unlink(*dir, it);
  NodeId id = NewNode(std::move(node).value());
  if (IsSymlink(id)) ForgetResolutions();  // see ApplyHardlink
  nodes_[*dir].children.insert_or_assign(std::move(name), Dirent{id, stamp_});  // rule 6
  return Status::Ok();
}

Result<ImageTree> TreeBuilder::Impl::Finish(std::string name) {
  if (!error_.ok()) return error_;
  if (finished_) return Fail(Status::InvalidArgument("tree builder: Finish called twice"));
  if (in_layer_)
    return Fail(Status::InvalidArgument("tree builder: Finish with layer " + std::to_string(layer_) + " open"));
  finished_ = true;
  ForgetResolutions();
  return Freeze(std::move(name), true);
}

Result<ImageTree> TreeBuilder::Impl::Snapshot(std::string name) {
  if (!error_.ok()) return error_;
  if (finished_) return Status::InvalidArgument("tree builder: Snapshot after Finish");
  if (in_layer_)
    return Status::InvalidArgument("tree builder: Snapshot with layer " + std::to_string(layer_) + " open");
  return Freeze(std::move(name), false);
}

Result<ImageTree> TreeBuilder::Impl::Freeze(std::string name, bool consume) {
  // Breadth-first numbering: the root is 0, a directory's children get
  // consecutive ids (good locality for readdir + lookup), a hardlinked node
  // takes the id of its first name.
  std::vector<NodeId> new_id(nodes_.size(), kNoNode);
  std::vector<NodeId> order{0};
  std::vector<NodeId> parent_of{0};  // by new id
  std::vector<uint32_t> subdirs{0};  // by new id
  new_id[0] = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const BuildNode& b = nodes_[order[k]];
    for (const auto& [child_name, d] : b.children) {
      if (IsDir(d.node)) ++subdirs[k];
      if (new_id[d.node] != kNoNode) continue;
      if (order.size() >= kNoNode) {
        Status st = Status::InvalidArgument("image tree " + name + ": too many nodes");
        return consume ? Fail(st) : st;
      }
      new_id[d.node] = static_cast<NodeId>(order.size());
      order.push_back(d.node);
      parent_of.push_back(static_cast<NodeId>(k));
      subdirs.push_back(0);
    }
  }

  ImageTreeWriter writer(consume ? std::move(layer_digests_) : layer_digests_,
                         consume ? std::move(image_digest_) : image_digest_);
  size_t dirents = 0;
  for (const BuildNode& b : nodes_) dirents += b.children.size();  // free slots hold none
  writer.Reserve(order.size(), dirents);
  std::vector<DirEntry> children;
  std::vector<Xattr> xattrs;
  for (size_t k = 0; k < order.size(); ++k) {
    const BuildNode& b = nodes_[order[k]];
    Node n;
    n.type = b.type;
    n.mode = b.mode;
    n.uid = b.uid;
    n.gid = b.gid;
    n.mtime_sec = b.mtime_sec;
    n.mtime_nsec = b.mtime_nsec;
    n.nlink = b.type == NodeType::kDirectory ? 2 + subdirs[k] : b.names;
    n.size = b.size;
    n.layer = b.layer;
    n.parent = b.type == NodeType::kDirectory ? parent_of[k] : 0;
    n.rdev_major = b.rdev_major;
    n.rdev_minor = b.rdev_minor;
    n.data_offset = b.data_offset;
    n.stored_size = b.stored_size;
    n.symlink_target = b.symlink_target;
    children.clear();
    for (const auto& [child_name, d] : b.children) children.push_back(DirEntry{child_name, new_id[d.node]});
    xattrs.clear();
    for (const auto& [xname, value] : b.xattrs) xattrs.push_back(Xattr{xname, value});
    writer.AddNode(n, children, xattrs, b.sparse);
    // Its names are in the writer now (copied, not interned: nothing points
    // into them) and each node is written once: freeing the map as we go
    // keeps the builder's dirents and the writer's from peaking together.
    if (consume) Children().swap(nodes_[order[k]].children);
  }
  Result<ImageTree> tree = writer.Finish(std::move(name));
  if (!consume) return tree;
  nodes_.clear();
  nodes_.shrink_to_fit();
  free_.clear();
  return tree;
}

TreeBuilder::TreeBuilder(const Limits& limits, MergeMode mode) : impl_(std::make_unique<Impl>(limits, mode)) {}
TreeBuilder::~TreeBuilder() = default;
TreeBuilder::TreeBuilder(TreeBuilder&&) noexcept = default;
TreeBuilder& TreeBuilder::operator=(TreeBuilder&&) noexcept = default;

Status TreeBuilder::BeginLayer(uint32_t layer_index, std::string_view digest) {
  return impl_->BeginLayer(layer_index, digest);
}
Status TreeBuilder::Apply(const TarEntry& entry) { return impl_->Apply(entry); }
Status TreeBuilder::EndLayer() { return impl_->EndLayer(); }
void TreeBuilder::SetImageDigest(std::string digest) { impl_->SetImageDigest(std::move(digest)); }
Result<ImageTree> TreeBuilder::Finish(std::string name) && { return impl_->Finish(std::move(name)); }
Result<ImageTree> TreeBuilder::Snapshot(std::string name) const { return impl_->Snapshot(std::move(name)); }
size_t TreeBuilder::allocated_nodes() const { return impl_->allocated_nodes(); }
uint64_t TreeBuilder::parent_steps() const { return impl_->parent_steps(); }
uint64_t TreeBuilder::symlink_steps() const { return impl_->symlink_steps(); }

}  // namespace lazyroot
