// ImageTree: the merged, whiteout-resolved file tree of one image. Immutable.
// It lives in one contiguous byte image in memory, the "Image tree file" of
// index/FORMAT.md, whether TreeBuilder just built it or it was read from the
// store; the accessors read the fixed-size records in place, so opening a
// 100k-node tree costs one read, one checksum and one bounds pass, and no
// per-node allocation. The file is read, never mapped: once validated, the
// bytes are ours, and a store file truncated or rewritten under a live mount
// cannot change them or raise SIGBUS. Copies share the bytes. All methods are
// const and safe to call from any number of threads at once.
//
// A mount opens its tree lazily instead (OpenFileLazy): only the header, the
// block table, the root and the image's and layers' names are read and
// checked at open, so a mount's start does not grow with the tree. Every
// other block is read (and its checksum checked) the first time a record in
// it is used, and every node is validated on first use as Open validates it
// (its own records, names and ranges; not the whole-tree shape, which only a
// full pass can check). A damaged block or node found then makes the
// accessors that need it throw TreeCorruptionError (never an out-of-bounds
// read); the FUSE side answers EIO for that request.
//
// Nodes are numbered 0..node_count()-1 in breadth-first order, node 0 is the
// root directory. Hardlinked names share one node. FUSE inode numbers are
// node + 1 (InodeOf / NodeOfInode are the only place that mapping is made).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "index/status.h"
#include "index/tar_entry.h"

namespace lazyroot {

using NodeId = uint32_t;

// On-disk type codes; values are part of the file format.
enum class NodeType : uint8_t {
  kRegular = 1,
  kDirectory = 2,
  kSymlink = 3,
  kCharDevice = 4,
  kBlockDevice = 5,
  kFifo = 6,
};

// One node, decoded from its record. symlink_target points into the tree's
// bytes and lives as long as any ImageTree sharing them.
struct Node {
  NodeType type = NodeType::kRegular;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky (mode & 07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t nlink = 1;                       // names for non-directories; 2 + subdirectories for directories
  uint64_t size = 0;                        // st_size: file length, symlink target length, 0 otherwise
  uint32_t layer = 0;                       // layer of the entry that last defined this node (0 = bottom)
  NodeId parent = 0;                        // directories: the parent directory (root: 0); others: 0
  uint32_t rdev_major = 0, rdev_minor = 0;  // character and block devices
  // Regular files: the bytes are in layer `layer`'s uncompressed tar stream,
  // stored_size bytes at data_offset (laid out by the sparse map if any).
  uint64_t data_offset = 0, stored_size = 0;
  std::string_view symlink_target;
  // Filled by ImageTree::GetNode; ignored by ImageTreeWriter::AddNode.
  uint32_t child_count = 0, xattr_count = 0, sparse_count = 0;

  bool IsDir() const { return type == NodeType::kDirectory; }
  // S_IFxxx | mode, as stat(2) reports it.
  uint32_t StMode() const;
};

struct DirEntry {
  std::string_view name;
  NodeId node = 0;
};

struct Xattr {
  std::string_view name;
  std::string_view value;
};

// What the accessors of a lazily opened tree throw when a record they need
// is in a block that does not read back as written (checksum, truncation,
// I/O error) or fails validation. what() names the tree file, the image and
// the block or node. first_report() is true for the first throw about that
// block or node only, so a walk over a damaged tree logs each damage once.
class TreeCorruptionError : public std::runtime_error {
 public:
  TreeCorruptionError(const std::string& what, bool first_report)
      : std::runtime_error(what), first_report_(first_report) {}
  bool first_report() const { return first_report_; }

 private:
  bool first_report_;
};

class ImageTree {
 public:
  static constexpr NodeId kRoot = 0;
  static constexpr char kMagic[9] = "LZRTREE1";
  // 2: the header names the image (manifest digest) the tree was built for.
  // 3: the body is checksummed per block (kBlockSize), for lazy reading.
  // 4: the header records the regular files' total size (statfs), and is
  //    136 bytes.
  static constexpr uint32_t kVersion = 4;
  // The writer's block size. A reader takes any power of two in
  // [4 KiB, 16 MiB] from the header.
  static constexpr uint32_t kBlockSize = 64 * 1024;

  // Validates `bytes` as an image tree file (magic, version, section bounds,
  // crc32c, every record's offsets, directory ordering, the tree shape) and
  // takes ownership. Returns Corruption naming `name` when anything is off.
  static Result<ImageTree> Open(std::vector<uint8_t> bytes, std::string name);
  // Reads the file at `path` into memory and validates it like Open.
  // Returns IoError if it cannot be opened or read, Corruption if it is
  // invalid (also when it changes size while being read). A file whose
  // header is not one of this version recording its size is refused after
  // reading the header alone. Nothing refers to the file afterwards.
  static Result<ImageTree> OpenFile(const std::string& path);
  // Opens the file at `path` lazily (see the top of this file): reads and
  // checks the header, the block table, the root directory and the image and
  // layer names, and keeps the file open to read the rest on first use.
  // Returns IoError or Corruption as OpenFile for what it reads now. A file
  // of another version is handed to OpenFile (and so refused the same way).
  // The accessors of the tree it returns may throw TreeCorruptionError.
  static Result<ImageTree> OpenFileLazy(const std::string& path);
  // OpenFileLazy on a file holding `bytes` (tests and fuzzing).
  static Result<ImageTree> OpenLazy(std::vector<uint8_t> bytes, std::string name);
  // Whether the tree was opened lazily (its accessors may throw).
  bool lazy() const { return lazy_ != nullptr; }
  // How many of the body's blocks a lazy tree has read (0 for other trees),
  // of how many. For tests of what an open or a lookup reads.
  uint32_t blocks_read() const;
  uint32_t block_count() const { return block_count_; }

  // Records Open/OpenFile looked at while validating: nodes + dirents +
  // xattrs + sparse extents, each once (validation is linear in the file,
  // whatever its counts and ranges claim). For tests of that bound.
  uint64_t validation_work() const { return validation_work_; }

  // The serialised file: what OpenFile reads back. Write it atomically.
  // REQUIRES: !lazy() (a lazy tree holds only the blocks it has read).
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& name() const;

  uint32_t node_count() const { return node_count_; }
  // The sum of st_size over the regular-file nodes (each hardlinked file
  // once; saturating at 2^64-1), as the header records it: what statfs
  // reports, without reading a node. Open/OpenFile check it against the
  // nodes; a lazy tree trusts the header's checksum for it (fsck, which
  // reads whole, checks it).
  uint64_t regular_bytes() const { return regular_bytes_; }
  // REQUIRES: id < node_count().
  Node GetNode(NodeId id) const;

  static uint64_t InodeOf(NodeId id) { return uint64_t{id} + 1; }
  // nullopt unless 1 <= ino <= node_count().
  std::optional<NodeId> NodeOfInode(uint64_t ino) const {
    if (ino == 0 || ino > node_count_) return std::nullopt;
    return static_cast<NodeId>(ino - 1);
  }

  // Directory children, sorted by name (bytewise). Index i is a stable
  // readdir offset. REQUIRES: dir < node_count(); non-directories have none.
  uint32_t ChildCount(NodeId dir) const;
  DirEntry ChildAt(NodeId dir, uint32_t index) const;  // REQUIRES: index < ChildCount(dir)
  // Binary search; nullopt if `dir` has no child `name`.
  std::optional<NodeId> Lookup(NodeId dir, std::string_view name) const;

  // Extended attributes sorted by name. REQUIRES: id < node_count().
  uint32_t XattrCount(NodeId id) const;
  Xattr XattrAt(NodeId id, uint32_t index) const;  // REQUIRES: index < XattrCount(id)
  std::optional<std::string_view> GetXattr(NodeId id, std::string_view name) const;

  // Sparse map of a regular file (empty if not sparse), ascending by offset.
  uint32_t SparseCount(NodeId id) const;
  SparseExtent SparseAt(NodeId id, uint32_t index) const;  // REQUIRES: index < SparseCount(id)

  // The layers the tree was built from, bottom first, as given to
  // TreeBuilder::BeginLayer (e.g. "sha256:…"; may be empty strings).
  uint32_t layer_count() const { return layer_count_; }
  std::string_view LayerDigest(uint32_t index) const;  // REQUIRES: index < layer_count()
  // The image the tree was built for, as given to TreeBuilder::SetImageDigest
  // (the manifest digest, "sha256:…"; empty if none was given).
  std::string_view ImageDigest() const;

  // The node named by `path` (cleaned lexically; symlinks are NOT followed),
  // nullopt if there is none. "" and "/" name the root.
  std::optional<NodeId> LookupPath(std::string_view path) const;
  // In-root resolution of `path`, following every symlink including the last
  // component (chroot semantics, see path_resolve.h). Returns NotFound if a
  // component is missing, InvalidArgument on a symlink loop, Corruption
  // (rather than throwing) for a damaged part of a lazy tree.
  Result<NodeId> Resolve(std::string_view path) const;

  // Adapter for ResolveInRoot (path_resolve.h).
  NodeId Root() const { return kRoot; }
  bool IsDir(NodeId id) const;
  bool IsSymlink(NodeId id) const;
  std::string_view SymlinkTarget(NodeId id) const;
  std::optional<NodeId> Child(NodeId dir, std::string_view name) const { return Lookup(dir, name); }

 private:
  struct Storage;
  struct Lazy;
  friend class ImageTreeWriter;
  ImageTree() = default;
  static Result<ImageTree> FromStorage(std::shared_ptr<const Storage> storage);
  static Result<ImageTree> OpenLazyFrom(std::unique_ptr<Lazy> lazy, std::string name);
  Status Validate();
  Status ValidateHeader();
  // The checks of node `id`'s own records (FORMAT.md, "What a reader
  // validates", 4-7 without the tiling and tree-shape rules). Reads the
  // blocks they need first (lazy trees). *fresh is cleared when it failed on
  // a block already known bad; *work counts the records looked at.
  Status CheckNode(NodeId id, bool* fresh, uint64_t* work) const;
  // Lazy trees: makes [offset, offset + length) readable, reading the
  // blocks it spans that are not read yet. No-op for other trees.
  Status Need(uint64_t offset, uint64_t length, bool* fresh) const;
  // Lazy trees: CheckNode once per node; throws TreeCorruptionError.
  void CheckLazily(NodeId id) const;
  const uint8_t* NodeRecord(NodeId id) const;
  std::string_view String(uint32_t offset, uint32_t length) const;

  std::shared_ptr<const Storage> storage_;
  Lazy* lazy_ = nullptr;  // in storage_; null unless opened lazily
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint32_t node_count_ = 0, dirent_count_ = 0, xattr_count_ = 0, sparse_count_ = 0, layer_count_ = 0;
  uint64_t nodes_offset_ = 0, dirents_offset_ = 0, xattrs_offset_ = 0, sparse_offset_ = 0, layers_offset_ = 0;
  uint64_t strings_offset_ = 0, strings_size_ = 0;
  uint64_t regular_bytes_ = 0;
  uint32_t image_digest_offset_ = 0, image_digest_size_ = 0;
  uint64_t body_offset_ = 0;  // where the checksummed blocks start
  uint32_t block_size_ = 0, block_count_ = 0;
  uint64_t validation_work_ = 0;
};

// ImageTreeWriter: serialises a tree node by node into the image tree file
// format. Used by TreeBuilder::Finish; usable on its own to write fixtures.
// Not thread-safe. Every string_view handed in must stay valid until Finish.
class ImageTreeWriter {
 public:
  // `image_digest`: the manifest digest recorded in the header (may be empty).
  explicit ImageTreeWriter(std::vector<std::string> layer_digests, std::string image_digest = {});
  ImageTreeWriter(const ImageTreeWriter&) = delete;
  ImageTreeWriter& operator=(const ImageTreeWriter&) = delete;
  ~ImageTreeWriter();

  // Sizes the node and dirent tables for this many records up front, so
  // they do not grow by doubling (up to twice their size, and both copies at
  // once while growing) on top of the tree being frozen. Optional.
  void Reserve(size_t nodes, size_t dirents);

  // Appends the next node (ids are given in call order, from 0 = root).
  // `children` must be sorted by name; xattrs sorted by name; node ids in
  // children may refer to nodes not yet added.
  void AddNode(const Node& node, std::span<const DirEntry> children, std::span<const Xattr> xattrs,
               std::span<const SparseExtent> sparse);
  // Lays out the file, checksums it and opens it (which validates it).
  // Returns InvalidArgument if the tree is inconsistent or exceeds the
  // format's 32-bit counts.
  Result<ImageTree> Finish(std::string name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazyroot
