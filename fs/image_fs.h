// ImageFs: the file system operations of a mounted image as plain C++ over an
// immutable ImageTree + ImageContent — Lookup, GetAttr, ReadDir(plus), Open /
// Read, ReadLink, ListXattr / GetXattr, StatFs. No FUSE and no errno here:
// results are values or an FsError, which fuse_adapter.cc alone maps to errno.
// GoogleTest calls these directly, without a mount.
//
// Inode numbers are a pure function of the tree (ino = node + 1, root = 1,
// ImageTree::InodeOf / NodeOfInode); every op maps its ino through NodeOf,
// the one bounds check. Nothing is allocated per inode, so there is no
// forget bookkeeping, and two ImageFs can live in one process.
//
// Thread safety: all methods are const or internally synchronised and may be
// called concurrently. Reads keep no per-open state: they all go through the
// one StreamCache, which owns the decoders and the decoded units.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "fs/stream_cache.h"
#include "index/image_content.h"
#include "index/image_tree.h"

namespace lazyroot {

// What can go wrong in an operation; the adapter maps each to one errno.
enum class FsError : uint8_t {
  kNoEntry,     // ENOENT: no such name (a cacheable negative lookup)
  kBadInode,    // ESTALE: an inode number the tree never handed out
  kNotDir,      // ENOTDIR
  kIsDir,       // EISDIR
  kNotSymlink,  // EINVAL (readlink of a non-symlink)
  kReadOnly,    // EROFS: open for writing
  kNoData,      // ENODATA: no such xattr
  kRange,       // ERANGE: the caller's xattr buffer is too small
  kIo,          // EIO: the layer blob did not read or decode (already logged)
  kNoOffset,    // ENXIO: lseek SEEK_DATA/SEEK_HOLE at or past the end, or no data after it
  kAccess,      // EACCES: access(2) denied by the node's mode
};

// Who is asking, for Access: the caller's fsuid, fsgid and supplementary groups.
struct Caller {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;
};

std::string_view FsErrorName(FsError e);

// A value or an FsError. Value type.
template <typename T>
class FsResult {
 public:
  FsResult(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  FsResult(FsError e) : v_(e) {}               // NOLINT
  bool ok() const { return v_.index() == 0; }
  FsError error() const { return std::get<1>(v_); }  // REQUIRES: !ok()
  T& operator*() { return std::get<0>(v_); }         // REQUIRES: ok()
  const T& operator*() const { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }

 private:
  std::variant<T, FsError> v_;
};

// stat(2) of one node. atime and ctime are reported equal to mtime.
struct Attr {
  uint64_t ino = 0;
  uint32_t mode = 0;  // S_IFxxx | permission bits incl. suid/sgid/sticky
  uint32_t nlink = 1;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units: stored (non-hole) bytes of regular files
  uint32_t rdev_major = 0, rdev_minor = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
};

// One readdir entry. next_offset is what the kernel passes back to resume
// after this entry: 1 after ".", 2 after "..", 3 + i after child i.
struct DirListing {
  std::string_view name;
  Attr attr;  // for "." and "..": only ino and mode are meaningful
  uint64_t next_offset = 0;
  bool is_dot = false;  // "." or "..": readdirplus must not count a lookup for it
  // False for a child whose node is damaged (a lazily read tree): the name is
  // listed with only its inode number (attr.mode 0, DT_UNKNOWN), not
  // instantiated by readdirplus, so that a lookup or stat of it is the EIO
  // and the names after it are still listed.
  bool attr_known = true;
};

// The getxattr/listxattr size protocol: asked with size 0, only `size` is
// filled; otherwise `data` holds the bytes (size == data.size()).
struct XattrReply {
  size_t size = 0;
  std::string data;
};

struct FsStats {
  uint64_t block_size = 4096;
  uint64_t blocks = 0;  // sum of regular file sizes, in block_size units, rounded up
  uint64_t files = 0;   // node count
  uint64_t name_max = 255;
};

// The xattr every entry of a debug view carries: which layer wrote it.
inline constexpr std::string_view kLayerXattr = "user.lazyroot.layer";

// A file that is not part of the image, served at the top of the mount
// (mount --krun-config's /.krun_config.json): read-only, 0444 root:root. It
// hides an image entry of the same name there, as extract's rename replaces
// it; nothing else of the tree changes.
struct RootFile {
  std::string name;  // one path component, not "." or ".."
  std::string data;
  int64_t mtime_sec = 0;
};

struct ImageFsOptions {
  StreamCacheOptions streams;  // decoded-unit cache, decoder pool, read-ahead
  // Debug views (mount --layer, --upto, --layers) only; empty for the normal
  // mount, which then serves the image's xattrs alone. When set, every node
  // from id synthetic_nodes on carries kLayerXattr with the value
  // layer_xattr_values[node.layer] ("<N> sha256:…"), in place of any
  // attribute of that name the image itself gave it; regular files and
  // directories only, the nodes the kernel serves user.* xattrs of.
  std::vector<std::string> layer_xattr_values;
  uint32_t synthetic_nodes = 0;  // ids below: the view's own directories, no layer
  // Files of our own at the root; inode numbers node_count + 1 + index.
  std::vector<RootFile> root_files;
  // Receives one line per read error (blob, offset, cause). Must be thread-safe.
  std::function<void(const std::string&)> log;
};

// What a FUSE request answers when its handler threw: ENOMEM for
// std::bad_alloc, EIO for anything else, after logging one line naming the
// operation and the inode ("read inode 42: out of memory"). A lazily read
// tree's TreeCorruptionError is EIO, logged only on its first report. The daemon goes
// on serving: one failed request, not ENOTCONN for every reader of the
// mount. REQUIRES: called inside a catch block. Never throws (a log that
// throws is skipped).
int FailedRequestErrno(std::string_view op, uint64_t ino, const std::function<void(const std::string&)>& log) noexcept;

class ImageFs {
 public:
  ImageFs(std::shared_ptr<const ImageTree> tree, std::shared_ptr<const ImageContent> content, ImageFsOptions options);

  const ImageTree& tree() const { return *tree_; }
  const StreamCache& streams() const { return streams_; }
  // Loads the layers opened lazily in the background (StreamCache::StartWarmUp).
  void StartWarmUp() { streams_.StartWarmUp(); }

  // The one inode -> node mapping; kBadInode unless 1 <= ino <= node_count.
  FsResult<NodeId> NodeOf(uint64_t ino) const;
  Attr AttrOf(NodeId node) const;

  FsResult<Attr> GetAttr(uint64_t ino) const;
  // kNotDir if parent is not a directory, kNoEntry if it has no such child.
  // "." and ".." resolve to the directory and its parent.
  FsResult<Attr> Lookup(uint64_t parent, std::string_view name) const;
  // kNotDir unless ino is a directory.
  FsResult<NodeId> OpenDir(uint64_t ino) const;
  // Calls emit for the entries of directory `ino` from `offset` on (".", "..",
  // then the children by name) until emit returns false. kNotDir as OpenDir.
  FsResult<bool> ReadDir(uint64_t ino, uint64_t offset, const std::function<bool(const DirListing&)>& emit) const;
  // Whether ino may be opened: kIsDir for directories, kReadOnly when `write`
  // is asked; other non-regular files open (the kernel never reads them
  // through us). Opening keeps no state: reads need only the inode.
  FsResult<NodeId> Open(uint64_t ino, bool write) const;
  // Reads up to out.size() bytes of regular file ino at offset; short only at
  // end of file, 0 past it and for non-regular files. kIo after logging one
  // line naming the blob and offset.
  FsResult<size_t> Read(uint64_t ino, uint64_t offset, std::span<uint8_t> out);
  // access(2): mask is R_OK|W_OK|X_OK (or F_OK = 0). kReadOnly for W_OK on
  // files, directories and symlinks (device nodes and fifos go by their
  // modes, as on any read-only mount); root may read and write anything and
  // execute what has any x bit (or is a directory); others get the owner,
  // group or other bits that apply.
  FsResult<bool> Access(uint64_t ino, int mask, const Caller& caller) const;
  // lseek(2) SEEK_DATA (data) or SEEK_HOLE (!data) on regular file ino from
  // offset: holes are exactly the gaps of a sparse file's map, plus the
  // implicit hole at its end. kNoOffset when offset >= size, or for SEEK_DATA
  // when only holes follow; kIsDir / other node types answer kNoOffset.
  FsResult<uint64_t> Seek(uint64_t ino, uint64_t offset, bool data) const;
  // kNotSymlink unless ino is a symlink. The view lives as long as the tree.
  FsResult<std::string_view> ReadLink(uint64_t ino) const;
  // size 0 asks for the length only; kRange if size is too small.
  FsResult<XattrReply> ListXattr(uint64_t ino, size_t size) const;
  // kNoData if there is no such attribute; kRange as ListXattr.
  FsResult<XattrReply> GetXattr(uint64_t ino, std::string_view name, size_t size) const;
  // From the tree's header (ImageTree::regular_bytes, node_count) and the
  // root files: reads no node, so it never fails or logs.
  FsStats StatFs() const;

 private:
  // The debug views' kLayerXattr value of node, nullopt outside them.
  std::optional<std::string_view> LayerXattr(NodeId node) const;
  // The root file with inode ino, or nullptr.
  const RootFile* RootFileOf(uint64_t ino) const;
  Attr RootFileAttr(const RootFile& f) const;
  bool HiddenByRootFile(std::string_view name) const;

  std::shared_ptr<const ImageTree> tree_;
  std::shared_ptr<const ImageContent> content_;
  ImageFsOptions options_;
  StreamCache streams_;
};

}  // namespace lazyroot
