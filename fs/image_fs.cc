#include "fs/image_fs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "fs/xattr_policy.h"
#include "index/exception_status.h"

namespace lazyroot {

int FailedRequestErrno(std::string_view op, uint64_t ino, const std::function<void(const std::string&)>& log) noexcept {
  int err = EIO;
  try {
    throw;
  } catch (const TreeCorruptionError& e) {
    // A damaged part of a lazily read tree: EIO for every request that
    // needs it, one log line the first time (it names the tree and image).
    try {
      if (log && e.first_report()) log(std::string(op) + " inode " + std::to_string(ino) + ": " + e.what());
    } catch (...) {
    }
    return EIO;
  } catch (const std::bad_alloc&) {
    err = ENOMEM;
  } catch (...) {
  }
  try {
    if (log) log(CurrentExceptionStatus(std::string(op) + " inode " + std::to_string(ino)).message());
  } catch (...) {
    // Out of memory again while logging: the errno alone must do.
  }
  return err;
}

std::string_view FsErrorName(FsError e) {
  switch (e) {
    case FsError::kNoEntry:
      return "no such entry";
    case FsError::kBadInode:
      return "stale inode";
    case FsError::kNotDir:
      return "not a directory";
    case FsError::kIsDir:
      return "is a directory";
    case FsError::kNotSymlink:
      return "not a symlink";
    case FsError::kReadOnly:
      return "read-only";
    case FsError::kNoData:
      return "no such attribute";
    case FsError::kRange:
      return "buffer too small";
    case FsError::kIo:
      return "I/O error";
    case FsError::kNoOffset:
      return "no such offset";
    case FsError::kAccess:
      return "permission denied";
  }
  return "unknown";
}

ImageFs::ImageFs(std::shared_ptr<const ImageTree> tree, std::shared_ptr<const ImageContent> content,
                 ImageFsOptions options)
    : tree_(std::move(tree)),
      content_(std::move(content)),
      options_(std::move(options)),
      streams_(content_, options_.streams) {}

FsResult<NodeId> ImageFs::NodeOf(uint64_t ino) const {
  std::optional<NodeId> node = tree_->NodeOfInode(ino);
  if (!node) return FsError::kBadInode;
  return *node;
}

Attr ImageFs::AttrOf(NodeId id) const {
  const Node n = tree_->GetNode(id);
  Attr a;
  a.ino = ImageTree::InodeOf(id);
  a.mode = n.StMode();
  a.nlink = n.nlink;
  a.uid = n.uid;
  a.gid = n.gid;
  a.size = n.size;
  // Holes take no blocks: stored_size is what a sparse file really occupies.
  if (n.type == NodeType::kRegular) a.blocks = (n.stored_size + 511) / 512;
  if (n.type == NodeType::kCharDevice || n.type == NodeType::kBlockDevice) {
    a.rdev_major = n.rdev_major;
    a.rdev_minor = n.rdev_minor;
  }
  a.mtime_sec = n.mtime_sec;
  a.mtime_nsec = n.mtime_nsec;
  return a;
}

const RootFile* ImageFs::RootFileOf(uint64_t ino) const {
  const uint64_t first = uint64_t{tree_->node_count()} + 1;
  if (ino < first || ino - first >= options_.root_files.size()) return nullptr;
  return &options_.root_files[ino - first];
}

Attr ImageFs::RootFileAttr(const RootFile& f) const {
  Attr a;
  a.ino = uint64_t{tree_->node_count()} + 1 + static_cast<uint64_t>(&f - options_.root_files.data());
  a.mode = S_IFREG | 0444;
  a.size = f.data.size();
  a.blocks = (a.size + 511) / 512;
  a.mtime_sec = f.mtime_sec;
  return a;
}

bool ImageFs::HiddenByRootFile(std::string_view name) const {
  for (const RootFile& f : options_.root_files) {
    if (f.name == name) return true;
  }
  return false;
}

FsResult<Attr> ImageFs::GetAttr(uint64_t ino) const {
  if (const RootFile* f = RootFileOf(ino)) return RootFileAttr(*f);
  FsResult<NodeId> node = NodeOf(ino);
  if (!node.ok()) return node.error();
  return AttrOf(*node);
}

FsResult<Attr> ImageFs::Lookup(uint64_t parent, std::string_view name) const {
  FsResult<NodeId> dir = NodeOf(parent);
  if (!dir.ok()) return dir.error();
  if (!tree_->IsDir(*dir)) return FsError::kNotDir;
  if (name == ".") return AttrOf(*dir);
  if (name == "..") return AttrOf(tree_->GetNode(*dir).parent);
  if (*dir == ImageTree::kRoot) {
    for (const RootFile& f : options_.root_files) {
      if (f.name == name) return RootFileAttr(f);
    }
  }
  std::optional<NodeId> child = tree_->Lookup(*dir, name);
  if (!child) return FsError::kNoEntry;
  return AttrOf(*child);
}

FsResult<NodeId> ImageFs::OpenDir(uint64_t ino) const {
  if (RootFileOf(ino) != nullptr) return FsError::kNotDir;
  FsResult<NodeId> node = NodeOf(ino);
  if (!node.ok()) return node.error();
  if (!tree_->IsDir(*node)) return FsError::kNotDir;
  return *node;
}

FsResult<bool> ImageFs::ReadDir(uint64_t ino, uint64_t offset,
                                const std::function<bool(const DirListing&)>& emit) const {
  FsResult<NodeId> dir = OpenDir(ino);
  if (!dir.ok()) return dir.error();
  DirListing e;
  if (offset == 0) {
    e.name = ".";
    e.attr.ino = ino;
    e.attr.mode = S_IFDIR;
    e.next_offset = 1;
    e.is_dot = true;
    if (!emit(e)) return false;
    offset = 1;
  }
  if (offset == 1) {
    e.name = "..";
    e.attr.ino = ImageTree::InodeOf(tree_->GetNode(*dir).parent);
    e.attr.mode = S_IFDIR;
    e.next_offset = 2;
    e.is_dot = true;
    if (!emit(e)) return false;
    offset = 2;
  }
  e.is_dot = false;
  const uint32_t count = tree_->ChildCount(*dir);
  const bool root = *dir == ImageTree::kRoot && !options_.root_files.empty();
  for (uint64_t i = offset - 2; i < count; ++i) {
    const DirEntry child = tree_->ChildAt(*dir, static_cast<uint32_t>(i));
    if (root && HiddenByRootFile(child.name)) continue;
    e.name = child.name;
    e.attr_known = true;
    try {
      e.attr = AttrOf(child.node);
    } catch (const TreeCorruptionError& err) {
      // One damaged node must not end the listing (readdir would answer EIO
      // for the whole chunk, and every name after it would be unreachable).
      if (options_.log && err.first_report()) {
        options_.log("readdir inode " + std::to_string(ino) + ": " + std::string(err.what()));
      }
      e.attr = Attr{};
      e.attr.ino = ImageTree::InodeOf(child.node);
      e.attr_known = false;
    }
    e.next_offset = i + 3;
    if (!emit(e)) return false;
  }
  if (!root) return true;
  // The root files come after the tree's children: offsets 3 + count + j.
  for (uint64_t j = offset - 2 > count ? offset - 2 - count : 0; j < options_.root_files.size(); ++j) {
    const RootFile& f = options_.root_files[j];
    e.name = f.name;
    e.attr = RootFileAttr(f);
    e.attr_known = true;
    e.next_offset = count + j + 3;
    if (!emit(e)) return false;
  }
  return true;
}

FsResult<NodeId> ImageFs::Open(uint64_t ino, bool write) const {
  if (RootFileOf(ino) != nullptr) {
    if (write) return FsError::kReadOnly;
    return ImageTree::kRoot;  // reads need only the inode
  }
  FsResult<NodeId> node = NodeOf(ino);
  if (!node.ok()) return node.error();
  if (tree_->IsDir(*node)) return FsError::kIsDir;
  if (write) return FsError::kReadOnly;
  return *node;
}

FsResult<size_t> ImageFs::Read(uint64_t ino, uint64_t offset, std::span<uint8_t> out) {
  if (const RootFile* f = RootFileOf(ino)) {
    if (offset >= f->data.size()) return size_t{0};
    const size_t n = std::min<size_t>(out.size(), f->data.size() - static_cast<size_t>(offset));
    std::memcpy(out.data(), f->data.data() + offset, n);
    return n;
  }
  FsResult<NodeId> id = NodeOf(ino);
  if (!id.ok()) return id.error();
  const Node node = tree_->GetNode(*id);
  if (node.type != NodeType::kRegular || offset >= node.size || out.empty()) return size_t{0};
  Status st;
  size_t n = 0;
  if (node.layer >= content_->layer_count()) {
    st = Status::Corruption("node " + std::to_string(*id) + " names layer " + std::to_string(node.layer) + " of " +
                            std::to_string(content_->layer_count()));
  } else {
    StreamCacheReader reader(&streams_, node.layer);
    st = ReadFileData(*tree_, *id, reader, offset, out, &n);
  }
  if (!st.ok()) {
    if (options_.log) {
      const std::string blob =
          node.layer < content_->layer_count() ? content_->layer(node.layer).digest : std::string("?");
      options_.log("read error: inode " + std::to_string(ino) + " offset " + std::to_string(offset) + " (blob " + blob +
                   ", stream offset " + std::to_string(node.data_offset + offset) + "): " + st.message());
    }
    return FsError::kIo;
  }
  return n;
}

FsResult<bool> ImageFs::Access(uint64_t ino, int mask, const Caller& caller) const {
  if (RootFileOf(ino) != nullptr) {  // 0444 root:root
    (void)caller;
    if (mask & W_OK) return FsError::kReadOnly;
    if (mask & X_OK) return FsError::kAccess;
    return true;
  }
  FsResult<NodeId> id = NodeOf(ino);
  if (!id.ok()) return id.error();
  const Node node = tree_->GetNode(*id);
  // As on any read-only mount: files, directories and symlinks cannot be
  // written; device nodes and fifos are not written through the file system.
  const bool stored_here =
      node.type == NodeType::kRegular || node.type == NodeType::kDirectory || node.type == NodeType::kSymlink;
  if ((mask & W_OK) && stored_here) return FsError::kReadOnly;
  const uint32_t mode = node.mode;
  if (caller.uid == 0) {
    const bool exec_ok = node.type == NodeType::kDirectory || (mode & 0111) != 0;
    if ((mask & X_OK) && !exec_ok) return FsError::kAccess;
    return true;
  }
  uint32_t bits;
  if (caller.uid == node.uid) {
    bits = (mode >> 6) & 7;
  } else if (caller.gid == node.gid ||
             std::find(caller.groups.begin(), caller.groups.end(), node.gid) != caller.groups.end()) {
    bits = (mode >> 3) & 7;
  } else {
    bits = mode & 7;
  }
  const uint32_t want = ((mask & R_OK) ? 4u : 0u) | ((mask & W_OK) ? 2u : 0u) | ((mask & X_OK) ? 1u : 0u);
  if ((bits & want) != want) return FsError::kAccess;
  return true;
}

FsResult<uint64_t> ImageFs::Seek(uint64_t ino, uint64_t offset, bool data) const {
  if (const RootFile* f = RootFileOf(ino)) {
    if (offset >= f->data.size()) return FsError::kNoOffset;
    return data ? offset : f->data.size();
  }
  FsResult<NodeId> id = NodeOf(ino);
  if (!id.ok()) return id.error();
  const Node node = tree_->GetNode(*id);
  if (node.type != NodeType::kRegular || offset >= node.size) return FsError::kNoOffset;
  if (node.sparse_count == 0) return data ? offset : node.size;  // all data, then the hole at EOF
  // The extents are sorted and disjoint; data is inside them, holes between.
  for (uint32_t k = 0; k < node.sparse_count; ++k) {
    const SparseExtent x = tree_->SparseAt(*id, k);
    if (x.length == 0) continue;
    const uint64_t end = x.logical_offset + x.length;
    if (offset >= end) continue;
    if (offset < x.logical_offset) return data ? x.logical_offset : offset;  // in a hole before x
    if (!data) {
      // Inside x: the hole starts where this run of touching extents ends.
      uint64_t run_end = end;
      for (uint32_t j = k + 1; j < node.sparse_count; ++j) {
        const SparseExtent y = tree_->SparseAt(*id, j);
        if (y.logical_offset > run_end) break;
        run_end = std::max(run_end, y.logical_offset + y.length);
      }
      return std::min(run_end, node.size);
    }
    return offset;
  }
  // Past the last extent: a hole up to the end.
  if (data) return FsError::kNoOffset;
  return offset;
}

FsResult<std::string_view> ImageFs::ReadLink(uint64_t ino) const {
  if (RootFileOf(ino) != nullptr) return FsError::kNotSymlink;
  FsResult<NodeId> node = NodeOf(ino);
  if (!node.ok()) return node.error();
  if (!tree_->IsSymlink(*node)) return FsError::kNotSymlink;
  return tree_->SymlinkTarget(*node);
}

namespace {

FsResult<XattrReply> SizedReply(std::string_view bytes, size_t size) {
  XattrReply r;
  r.size = bytes.size();
  if (size == 0) return r;
  if (bytes.size() > size) return FsError::kRange;
  r.data.assign(bytes);
  return r;
}

}  // namespace

FsResult<XattrReply> ImageFs::ListXattr(uint64_t ino, size_t size) const {
  if (RootFileOf(ino) != nullptr) return SizedReply({}, size);
  FsResult<NodeId> node = NodeOf(ino);
  if (!node.ok()) return node.error();
  std::string list;
  const std::optional<std::string_view> layer = LayerXattr(*node);
  const uint32_t count = tree_->XattrCount(*node);
  for (uint32_t i = 0; i < count; ++i) {
    const std::string_view name = tree_->XattrAt(*node, i).name;
    if (!RootfsKeepsXattr(name)) continue;       // as extract does
    if (layer && name == kLayerXattr) continue;  // ours replaces the image's
    list.append(name);
    list.push_back('\0');
  }
  if (layer) {
    list.append(kLayerXattr);
    list.push_back('\0');
  }
  return SizedReply(list, size);
}

FsResult<XattrReply> ImageFs::GetXattr(uint64_t ino, std::string_view name, size_t size) const {
  if (RootFileOf(ino) != nullptr) return FsError::kNoData;
  FsResult<NodeId> node = NodeOf(ino);
  if (!node.ok()) return node.error();
  if (name == kLayerXattr) {
    if (std::optional<std::string_view> layer = LayerXattr(*node)) return SizedReply(*layer, size);
  }
  std::optional<std::string_view> value = tree_->GetXattr(*node, name);
  if (!value || !RootfsKeepsXattr(name)) return FsError::kNoData;
  return SizedReply(*value, size);
}

std::optional<std::string_view> ImageFs::LayerXattr(NodeId node) const {
  if (options_.layer_xattr_values.empty() || node < options_.synthetic_nodes) return std::nullopt;
  const Node n = tree_->GetNode(node);
  // The kernel serves user.* xattrs of regular files and directories alone
  // (getxattr of a symlink's is ENODATA before it asks us): listing it on
  // the others would name an attribute nobody can read.
  if (n.type != NodeType::kRegular && n.type != NodeType::kDirectory) return std::nullopt;
  if (n.layer >= options_.layer_xattr_values.size()) return std::nullopt;
  return options_.layer_xattr_values[n.layer];
}

FsStats ImageFs::StatFs() const {
  // From the tree's header, not a walk of its nodes: a lazily read tree
  // (a mount's) would read every block for df's answer, and a runtime or a
  // package manager asks statvfs("/") at start. The same numbers as the walk
  // gave (ImageTree::Open checks the header's total against the nodes; fsck
  // reads trees whole), and no damaged block can fail or log here.
  FsStats stats;
  uint64_t bytes = tree_->regular_bytes();
  for (const RootFile& f : options_.root_files) {
    bytes = bytes > UINT64_MAX - f.data.size() ? UINT64_MAX : bytes + f.data.size();
  }
  stats.files = uint64_t{tree_->node_count()} + options_.root_files.size();
  stats.blocks = bytes / stats.block_size + (bytes % stats.block_size != 0);  // rounded up, no overflow
  return stats;
}

}  // namespace lazyroot
